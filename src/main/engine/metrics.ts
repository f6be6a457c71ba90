/**
 * Classification metrics from predicted probabilities: accuracy, top-k, per-class precision,
 * recall and F1 with macro and weighted averages, the confusion matrix and the top losses.
 * Pure functions on typed arrays, unit-tested as numbers.
 */

export interface ClassificationReport {
  accuracy: number;
  loss: number;
  topK: { k: number; accuracy: number }[];
  perClass: { name: string; precision: number; recall: number; f1: number; support: number }[];
  macro: { precision: number; recall: number; f1: number };
  weighted: { precision: number; recall: number; f1: number };
  /** confusion[true][predicted] */
  confusion: number[][];
  /** Indices of examples by descending loss, with their prediction. */
  topLosses: { index: number; trueClass: number; predicted: number; confidence: number; loss: number }[];
}

function argmax(row: Float32Array | number[], offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (row[offset + j] > row[offset + best]) best = j;
  return best;
}

/**
 * `probs` is n x c row-major probabilities (softmax outputs), `labels` the true classes.
 * `topLossCount` limits the returned top losses.
 */
export function classificationReport(probs: Float32Array, labels: Int32Array, classNames: string[], topLossCount = 16): ClassificationReport {
  const n = labels.length;
  const c = classNames.length;
  if (probs.length !== n * c) throw new Error(`classificationReport: ${probs.length} probabilities for ${n} examples x ${c} classes`);
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  const ks = [1, 3, 5].filter((k) => k <= c);
  const topHits = new Array<number>(ks.length).fill(0);
  const losses: { index: number; trueClass: number; predicted: number; confidence: number; loss: number }[] = [];
  let lossSum = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const o = i * c;
    const y = labels[i];
    const pred = argmax(probs, o, c);
    confusion[y][pred]++;
    if (pred === y) correct++;
    // rank of the true class: how many classes score strictly higher
    let higher = 0;
    for (let j = 0; j < c; j++) if (probs[o + j] > probs[o + y]) higher++;
    ks.forEach((k, t) => {
      if (higher < k) topHits[t]++;
    });
    const loss = -Math.log(Math.max(probs[o + y], 1e-12));
    lossSum += loss;
    losses.push({ index: i, trueClass: y, predicted: pred, confidence: probs[o + pred], loss });
  }
  const perClass = classNames.map((name, k) => {
    const tp = confusion[k][k];
    let predicted = 0;
    let support = 0;
    for (let j = 0; j < c; j++) {
      predicted += confusion[j][k];
      support += confusion[k][j];
    }
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { name, precision, recall, f1, support };
  });
  const mean = (f: (p: (typeof perClass)[number]) => number) => perClass.reduce((a, p) => a + f(p), 0) / Math.max(1, c);
  const wmean = (f: (p: (typeof perClass)[number]) => number) => perClass.reduce((a, p) => a + f(p) * p.support, 0) / Math.max(1, n);
  losses.sort((a, b) => b.loss - a.loss);
  return {
    accuracy: n ? correct / n : 0,
    loss: n ? lossSum / n : 0,
    topK: ks.map((k, t) => ({ k, accuracy: n ? topHits[t] / n : 0 })),
    perClass,
    macro: { precision: mean((p) => p.precision), recall: mean((p) => p.recall), f1: mean((p) => p.f1) },
    weighted: { precision: wmean((p) => p.precision), recall: wmean((p) => p.recall), f1: wmean((p) => p.f1) },
    confusion,
    topLosses: losses.slice(0, topLossCount),
  };
}
