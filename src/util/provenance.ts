/** What every result file records: code version, backend, library versions, machine. */
import { execSync } from 'child_process';
import * as os from 'os';
import * as tf from '@tensorflow/tfjs-core';
import { backendInfo } from '../backend';
import { projectRoot } from './fsutil';

export function gitCommit(): string {
  try {
    const root = projectRoot();
    const sha = execSync('git rev-parse HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    // Result files under figures/ and research/results/ do not make the code dirty (a table or probe run rewrites them).
    const dirty = execSync("git status --porcelain --untracked-files=no -- . ':!figures' ':!research/results'", { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${sha}+dirty` : sha;
  } catch {
    return 'unknown';
  }
}

export interface Provenance {
  commit: string;
  backend: string;
  backendPackage: string;
  versions: Record<string, string>;
  machine: { cpus: number; memoryGiB: number; platform: string };
  date: string;
}

export function provenance(): Provenance {
  let backend = 'uninitialised';
  let backendPackage = '';
  try {
    const b = backendInfo();
    backend = b.name;
    backendPackage = b.package;
  } catch {
    /* recorded as uninitialised */
  }
  return {
    commit: gitCommit(),
    backend,
    backendPackage,
    versions: { node: process.version, 'tfjs-core': tf.version_core, 'rvpt-notebooks': require('../../package.json').version },
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), platform: `${os.platform()}-${os.arch()}` },
    date: new Date().toISOString(),
  };
}
