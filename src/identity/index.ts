export type { Identity, IdentityInput, IdentityResolver, IdentitySourceUsed } from './identity-resolver.js'
export { createIdentityResolver, OTHER_USER_LABEL } from './identity-resolver.js'
