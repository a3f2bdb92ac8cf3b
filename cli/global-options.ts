// The options every command reads besides its own (set on the program in cli/main.ts).
export interface GlobalOptions {
  /** Path of pipeline.yaml. */
  config: string;
  verbose: boolean;
  /** Training backend for every stage that has a `backend` param. */
  backend?: string;
}
