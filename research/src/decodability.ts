/**
 * How much of a quantity an encoder's features hold beyond the class: the cross-validated R^2 of a ridge regression
 * from the features to the quantity, both centred within each class first (so the class itself explains nothing).
 * The attribute probe (experiments/attributeProbe.ts) reads it as "does the encoder keep features the task does not
 * need", the premise of the paper's PR explanation.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';

/** Rows of `x` and values of `y` minus their class means. */
function centreWithinClass(x: number[][], y: number[], labels: ArrayLike<number>): { x: number[][]; y: number[] } {
  const sums = new Map<number, { n: number; x: number[]; y: number }>();
  x.forEach((row, i) => {
    const s = sums.get(labels[i]) ?? { n: 0, x: new Array(row.length).fill(0), y: 0 };
    s.n++;
    row.forEach((v, j) => (s.x[j] += v));
    s.y += y[i];
    sums.set(labels[i], s);
  });
  return {
    x: x.map((row, i) => {
      const s = sums.get(labels[i])!;
      return row.map((v, j) => v - s.x[j] / s.n);
    }),
    y: y.map((v, i) => v - sums.get(labels[i])!.y / sums.get(labels[i])!.n),
  };
}

/**
 * Within-class R^2 over `folds` folds (rows dealt round-robin, so it is deterministic): ridge with penalty
 * `lambda` x (training rows) on standardised-free features, fitted on the other folds, scored on each.
 */
export function withinClassR2(features: number[][], values: number[], labels: ArrayLike<number>, opts: { folds?: number; lambda?: number } = {}): number {
  const { folds = 5, lambda = 1e-2 } = opts;
  const n = values.length;
  if (features.length !== n || labels.length !== n) throw new Error(`withinClassR2: ${features.length} feature rows, ${n} values and ${labels.length} labels; they must match.`);
  if (n < 2 * folds) throw new Error(`withinClassR2: ${n} rows are too few for ${folds} folds.`);
  const { x, y } = centreWithinClass(features, values, labels);
  let resid = 0;
  let total = 0;
  for (let f = 0; f < folds; f++) {
    const train = [...Array(n).keys()].filter((i) => i % folds !== f);
    const test = [...Array(n).keys()].filter((i) => i % folds === f);
    const A = new Matrix(train.map((i) => x[i]));
    const mu = A.mean('column');
    A.subRowVector(mu);
    const yMean = train.reduce((a, i) => a + y[i], 0) / train.length;
    const b = Matrix.columnVector(train.map((i) => y[i] - yMean));
    const gram = A.transpose().mmul(A).add(Matrix.eye(A.columns).mul(lambda * train.length));
    const w = new CholeskyDecomposition(gram).solve(A.transpose().mmul(b));
    for (const i of test) {
      let p = yMean;
      for (let j = 0; j < A.columns; j++) p += (x[i][j] - mu[j]) * w.get(j, 0);
      resid += (y[i] - p) ** 2;
      total += (y[i] - yMean) ** 2;
    }
  }
  if (!(total > 0)) throw new Error('withinClassR2: the values do not vary within classes; there is nothing beyond the class to decode.');
  return 1 - resid / total;
}

/** The share of the features' total variance that lies within classes (1 minus the between-class share). */
export function withinClassVarianceShare(features: number[][], labels: ArrayLike<number>): number {
  const zeros = new Array(features.length).fill(0);
  const within = centreWithinClass(features, zeros, labels).x;
  const dims = features[0].length;
  const mean = new Array(dims).fill(0);
  for (const row of features) row.forEach((v, j) => (mean[j] += v / features.length));
  let w = 0;
  let t = 0;
  features.forEach((row, i) => {
    for (let j = 0; j < dims; j++) {
      w += within[i][j] ** 2;
      t += (row[j] - mean[j]) ** 2;
    }
  });
  return w / t;
}
