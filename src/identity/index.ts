export type { Identity, IdentityInput, IdentityResolver, IdentitySourceUsed, KeyCheck } from './identity-resolver.js'
export { API_KEY_HEADERS, createIdentityResolver, OTHER_USER_LABEL } from './identity-resolver.js'
