// The package ships no types; this covers the one function the emulator's tests call.
declare module 'parse-prometheus-text-format' {
  export default function parsePrometheusTextFormat(text: string): unknown[]
}
