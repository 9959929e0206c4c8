// changesSince's two shapes made from each other: the whole answer (Changes) collected from its
// parts (Store.changesSince), and the parts of a whole answer (a Client whose daemon is older than
// the parts listing). Kept apart from the reader so that the client loads only this.
import type { Changes, ChangesSincePart } from './types.js';

/** The whole answer of changesSinceParts' parts, in their order. */
export async function collectChanges(parts: AsyncIterable<ChangesSincePart>): Promise<Changes> {
  const answer: Changes = { changed: [], vanished: [], highestModseq: 0 };
  for await (const part of parts) {
    // one at a time: push(...list) of a 100k-uid piece passes the stack's bound on arguments
    if ('changed' in part) for (const info of part.changed) answer.changed.push(info);
    else if ('vanished' in part) for (const uid of part.vanished) answer.vanished.push(uid);
    else if ('vanishedRanges' in part) for (const range of part.vanishedRanges) answer.vanishedRanges!.push(range);
    else {
      answer.highestModseq = part.highestModseq;
      if (part.vanishedFloor !== undefined) Object.assign(answer, { vanishedRanges: [], vanishedFloor: part.vanishedFloor });
    }
  }
  return answer;
}

/** A whole answer as changesSinceParts gives it: the head, vanished, ranges, changed, each list in pieces of `pieceEntries`. */
export async function* partsOfChanges(answer: Changes, pieceEntries: number): AsyncGenerator<ChangesSincePart> {
  const { changed, vanished, highestModseq, vanishedRanges, vanishedFloor } = answer;
  yield vanishedRanges ? { highestModseq, vanishedFloor: vanishedFloor! } : { highestModseq };
  for (let at = 0; at < vanished.length; at += pieceEntries) yield { vanished: vanished.slice(at, at + pieceEntries) };
  if (vanishedRanges) {
    for (let at = 0; at < vanishedRanges.length || at === 0; at += pieceEntries) yield { vanishedRanges: vanishedRanges.slice(at, at + pieceEntries), vanishedFloor: vanishedFloor! };
  }
  for (let at = 0; at < changed.length; at += pieceEntries) yield { changed: changed.slice(at, at + pieceEntries) };
}
