// One experiment of a sweep (`run --matrix`) as the engine sees it: a label and the param values
// it assigns (already applied to its session's pipeline).
export interface RunExperiment {
  /** exp1, exp2... in the order of the cross product. */
  label: string;
  assignments: Record<string, string>;
  /** The assignments as --set arguments (a queue job carries them to its worker). */
  sets: string[];
}

export function describeAssignments(assignments: Record<string, string>): string {
  return Object.entries(assignments)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}
