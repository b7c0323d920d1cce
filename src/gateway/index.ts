export type { Gateway, GatewayOptions } from './create-gateway.js'
export { createGateway } from './create-gateway.js'
export { createServeCommand } from './serve-command.js'
