// Tests run on the compiled output in dist/ (the same code the `pipeline` bin runs).
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  testTimeout: 300_000,
  // Heavy e2e suites share 2 cores; more workers only contend.
  maxWorkers: 2,
};
