/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/research/test'],
  testTimeout: 300000,
  // One worker: the machine has two cores and each test file already saturates one with WASM kernels.
  maxWorkers: 1,
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
};
