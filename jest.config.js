/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/research/test'],
  testTimeout: 300000,
  // Builds dist/ when a source is newer and gives the tests a temporary cache (test/globalSetup.js).
  globalSetup: '<rootDir>/test/globalSetup.js',
  // One worker: the machine has two cores and each test file already saturates one with WASM kernels.
  maxWorkers: 1,
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
};
