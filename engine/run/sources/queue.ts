// `run --executor queue`: a worker computes the stage and pushes its result to the remote, from
// where it is committed here like any remote result; but this run computed it (its report says
// `ran`, and on which worker).
import { StageError } from '../../errors.js';
import { checkMayProduce, producing, type ResultSource } from './result-source.js';
import { pullFromRemote } from './remote.js';

export const queueSource: ResultSource = {
  name: 'queue',
  produces: true,
  async tryProvide(stage, x) {
    const { dispatch } = x.opts;
    if (!dispatch) return undefined;
    checkMayProduce(stage, x);
    const { name } = stage;
    const { key, reason } = producing(stage);
    // The stage's output on its worker comes back with its job: kept in this run's logs like a local stage's.
    x.logs.attempt(name, 1);
    const keep = (text: string) => {
      for (const line of text.split('\n')) if (line !== '') x.logs.line(name, line);
    };
    const { worker, computed } = await dispatch(
      name,
      key,
      stage.ups.map((u) => u.manifest!),
      x.signal,
      keep,
    );
    const pulledBack = await pullFromRemote(stage, x);
    if (!pulledBack) throw new StageError(`stage ${name}: worker ${worker} finished it, but its result could not be pulled from the remote`);
    const { pulled: _pulled, ...result } = pulledBack;
    if (computed !== false) return { ...result, outcome: 'ran', reason, worker };
    // The worker found it made (say, by a worker cut off after it pushed): credit who computed it.
    const by = pulledBack.manifest?.worker?.replace(/\p{Cc}/gu, '?').slice(0, 200);
    return by ? { ...result, outcome: 'ran', reason, worker: by } : pulledBack;
  },
};
