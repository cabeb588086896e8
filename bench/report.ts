/**
 * One JSON object per figure, each next to its limit or peer measured in the same run
 * (the brief: "Speed is measured, not asserted").
 */
export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly peer: string;
  readonly peerValue: number | null;
  readonly ratio: number | null;
  /** The target from the issue, as text (`ratio >= 0.85`, `<= 50 ms`). */
  readonly target: string;
  readonly met: boolean;
  readonly note?: string;
}

export function report(figure: Figure): void {
  const round = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);
  console.log(JSON.stringify({ ...figure, value: round(figure.value), peerValue: round(figure.peerValue), ratio: round(figure.ratio) }));
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}
