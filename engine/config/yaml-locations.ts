// Maps a path in the parsed YAML document (e.g. ['stages', 'train', 'with', 'epochs']) to the
// file:line:col where it is written, so every config error can point at its source.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { SourceLocation } from '../errors.js';

export type DocPath = readonly (string | number)[];

interface Found {
  /** The deepest node reached along the path (undefined: the document is empty). */
  node: Node | null | undefined;
  /** The key node of the map entry holding `node`, if it was reached through a map. */
  key: Node | undefined;
  /** How many path segments were matched. */
  depth: number;
}

export class YamlLocator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    /** File name as shown in messages. */
    readonly file: string,
  ) {}

  /** Location of a byte offset in the source. */
  at(offset: number): SourceLocation {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col };
  }

  /**
   * Where the value at `path` is written. When the path does not exist (a missing key), the key
   * that owns the deepest existing map (e.g. `with:` or the stage name), or the deepest existing
   * scalar when the path continues into a value that was substituted from `${params.x}`.
   */
  value(path: DocPath): SourceLocation {
    const found = this.walk(path);
    if (found.depth === path.length) {
      // An empty value (`with:` and nothing after it) is best shown at its key.
      const empty = isScalar(found.node) && found.node.value === null && found.node.range && found.node.range[0] === found.node.range[1];
      const node = empty ? found.key : found.node;
      return this.nodeStart(node) ?? this.nodeStart(found.key) ?? this.at(0);
    }
    if (found.node && isScalar(found.node)) return this.nodeStart(found.node) ?? this.at(0);
    return this.nodeStart(found.key) ?? this.nodeStart(found.node) ?? this.at(0);
  }

  /** Where the key of the entry at `path` is written (for unknown keys and stage declarations). */
  key(path: DocPath): SourceLocation {
    const found = this.walk(path);
    if (found.depth === path.length && found.key) return this.nodeStart(found.key) ?? this.at(0);
    return this.value(path);
  }

  /** Whether `path` names a node that is written in the file (not added by --set or defaults). */
  has(path: DocPath): boolean {
    return this.walk(path).depth === path.length;
  }

  private nodeStart(node: Node | null | undefined): SourceLocation | undefined {
    const range = node?.range;
    return range ? this.at(range[0]) : undefined;
  }

  private resolve(node: unknown): Node | null | undefined {
    let current = node;
    // Aliases point at anchored nodes elsewhere in the document; follow them (bounded, in case of loops).
    for (let hops = 0; hops < 100 && isAlias(current); hops++) current = current.resolve(this.doc);
    return current as Node | null | undefined;
  }

  private walk(path: DocPath): Found {
    let node = this.resolve(this.doc.contents);
    let key: Node | undefined;
    let depth = 0;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => {
          const k = isScalar(p.key) ? p.key.value : p.key;
          return String(k) === String(segment);
        });
        if (!pair) break;
        key = pair.key as Node;
        node = this.resolve(pair.value);
      } else if (isSeq(node)) {
        const index = typeof segment === 'number' ? segment : Number(segment);
        if (!Number.isInteger(index) || index < 0 || index >= node.items.length) break;
        node = this.resolve(node.items[index]);
        // A sequence item has no key: messages about it point at the item itself.
        key = node ?? undefined;
      } else {
        break;
      }
      depth++;
    }
    return { node, key, depth };
  }
}
