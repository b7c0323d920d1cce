import { type Static, Type } from 'typebox'
import { type RouterName, routerOptionSchemas } from '../../routing/index.js'

export const DEFAULT_ROUTING: RouterName = 'most-room'

/** `{ name, options }` for each router, its options typed by the router's own schema. */
export type RoutingConfig = {
  [N in RouterName]: { name: N; options: Static<(typeof routerOptionSchemas)[N]> }
}[RouterName]

/**
 * Which backend of a model's pool an admitted request goes to: `routing.options` belong to `routing.name`,
 * a discriminated `oneOf` with one branch per registered router (src/routing), as the `policy` section is.
 */
export const routingSection = Type.Unsafe<RoutingConfig>({
  type: 'object',
  title: 'routing',
  additionalProperties: false,
  default: {},
  required: ['name'],
  properties: {
    name: { type: 'string', default: DEFAULT_ROUTING },
    options: { type: 'object', default: {} },
  },
  discriminator: { propertyName: 'name' },
  oneOf: Object.entries(routerOptionSchemas).map(([name, options]) =>
    Type.Object({ name: Type.Literal(name), options }, { additionalProperties: false }),
  ),
})
