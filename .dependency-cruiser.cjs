// Layer rules, checked by `npm run lint` (dependency-cruiser) in CI. docs/architecture.md, "Project layout",
// explains each layer; a rule here says which way its imports may point. Type-only imports count.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules import each other in a circle: split out what both need, or invert one import.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'lib-is-a-leaf',
      severity: 'error',
      comment: 'lib/ is shared code that knows no pipeline: it imports only packages and other lib/ modules.',
      from: { path: '^lib/' },
      to: { path: '^(engine|stages|cli|workers|bench|test|ui)/' },
    },
    {
      name: 'workers-use-lib-only',
      severity: 'error',
      comment: 'A worker module runs lib/ code on a worker thread; it knows no engine, stage or CLI.',
      from: { path: '^workers/' },
      to: { path: '^(engine|stages|cli|bench|test|ui)/' },
    },
    {
      name: 'stages-see-only-the-stage-contract',
      severity: 'error',
      comment: 'A stage kind depends on the engine only through engine/contract.ts and engine/errors.ts, never on engine internals or the CLI.',
      from: { path: '^stages/' },
      to: { path: '^(engine/|cli/|bench/|test/)', pathNot: '^engine/(contract|errors)[.]ts$' },
    },
    {
      name: 'stage-kinds-are-independent',
      severity: 'error',
      comment: 'A stage kind (stages/<kind>/) does not import another kind: what two kinds share lives in lib/. Only stages/index.ts lists them all.',
      from: { path: '^stages/([^/]+)/' },
      to: { path: '^stages/', pathNot: '^stages/($1/|[^/]+[.]ts$)' },
    },
    {
      name: 'engine-knows-no-stage-kinds-or-cli',
      severity: 'error',
      comment: 'The engine runs the stage kinds it is handed (the CLI passes stages/index.ts) and never imports the CLI.',
      from: { path: '^engine/' },
      to: { path: '^(stages|cli|workers|bench|test|ui)/' },
    },
    {
      name: 'stage-contract-stands-alone',
      severity: 'error',
      comment: 'engine/contract.ts and engine/errors.ts are what stage kinds import: they must not pull in engine internals.',
      from: { path: '^engine/(contract|errors)[.]ts$' },
      to: { path: '^engine/', pathNot: '^engine/(contract|errors)[.]ts$' },
    },
    {
      name: 'engine-store-is-the-bottom-phase',
      severity: 'error',
      comment: 'engine/store/ (objects, manifests, runs, lock, stat cache) knows nothing of config, planning, running or the features built on them.',
      from: { path: '^engine/store/' },
      to: { path: '^engine/(config|plan|run|promote|remote|schedule|queue|runner)/|^engine/session[.]ts$' },
    },
    {
      name: 'engine-config-comes-before-plan-and-run',
      severity: 'error',
      comment:
        'engine/config/ turns pipeline.yaml into a Pipeline; it uses only the store (its directory name) below it, no planning, running or feature code.',
      from: { path: '^engine/config/' },
      to: { path: '^engine/(plan|run|promote|remote|schedule|queue|runner)/|^engine/session[.]ts$' },
    },
    {
      name: 'engine-plan-comes-before-run',
      severity: 'error',
      comment: 'engine/plan/ decides what runs (a pure function of gathered facts); it uses no running code.',
      from: { path: '^engine/plan/' },
      to: { path: '^engine/(run|promote|remote|schedule|queue|runner)/|^engine/session[.]ts$' },
    },
    {
      name: 'engine-run-uses-no-feature-code',
      severity: 'error',
      comment:
        'engine/run/ executes a plan; the features built on the phases (remote, queue, schedule, promote) plug in through its options, never through imports.',
      from: { path: '^engine/run/' },
      to: { path: '^engine/(promote|remote|schedule|queue|runner)/|^engine/session[.]ts$' },
    },
    {
      name: 'engine-runner-is-the-engine-top',
      severity: 'error',
      comment:
        'engine/runner/ runs a whole pipeline (lock, remote, queue, execute, records, push, promotion) for the commands; no other engine module imports it.',
      from: { path: '^engine/', pathNot: '^engine/runner/' },
      to: { path: '^engine/runner/' },
    },
    {
      name: 'ui-is-served-by-the-cli-only',
      severity: 'error',
      comment:
        "ui/ (`pipeline ui`: the web app over the store) reads the store through engine/ and lib/; only its command (cli/commands/ui.ts) and tests import it, and it imports neither the CLI nor the stage kinds nor the runner, except the runner's cancel request (engine/runner/cancel.ts: store files only) for its Cancel action.",
      from: { path: '^ui/' },
      to: { path: '^(cli|stages|workers|bench|test)/|^engine/runner/', pathNot: '^engine/runner/cancel[.]ts$' },
    },
    {
      name: 'only-the-ui-command-imports-ui',
      severity: 'error',
      comment: 'Of the CLI, only cli/commands/ui.ts imports ui/ (the server loads nothing for other commands).',
      from: { path: '^(cli|engine|stages|lib|workers|bench)/', pathNot: '^cli/commands/ui[.]ts$' },
      to: { path: '^ui/' },
    },
    {
      name: 'cli-is-the-top',
      severity: 'error',
      comment: 'Nothing but the CLI itself (and tests, benchmarks) imports cli/.',
      from: { path: '^(engine|stages|lib|workers|ui)/' },
      to: { path: '^cli/' },
    },
    {
      name: 'commands-share-no-options-through-main',
      severity: 'error',
      comment:
        'cli/main.ts is the entry point that loads every command (through cli/command-table.ts); a command importing it back makes a cycle (shared types live in cli/global-options.ts).',
      from: { path: '^cli/', pathNot: '^cli/main[.]ts$' },
      to: { path: '^cli/main[.]ts$' },
    },
    {
      name: 'production-code-uses-no-dev-dependencies',
      severity: 'error',
      comment: 'engine/, cli/, stages/, lib/ and workers/ run where only dependencies are installed.',
      from: { path: '^(engine|cli|stages|lib|workers|ui)/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-undeclared-packages',
      severity: 'error',
      comment: 'Every imported package is declared in package.json.',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to no file.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    includeOnly: '^(engine|cli|stages|lib|workers|bench|test|ui)/',
    exclude: { path: '^(dist|node_modules)/|^test/fixtures/' },
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
