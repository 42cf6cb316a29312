/** A doubly linked recency list over the nodes themselves: touching, adding and removing are O(1), with no allocation. */

export interface LruNode<N> {
  prev: N | undefined;
  next: N | undefined;
}

export class LruList<N extends LruNode<N>> {
  #head: N | undefined;
  #tail: N | undefined;

  /** The least recently used node. */
  get oldest(): N | undefined {
    return this.#tail;
  }

  pushNewest(node: N): void {
    node.prev = undefined;
    node.next = this.#head;
    if (this.#head) this.#head.prev = node;
    this.#head = node;
    if (this.#tail === undefined) this.#tail = node;
  }

  remove(node: N): void {
    if (node.prev) node.prev.next = node.next;
    else this.#head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.#tail = node.prev;
    node.prev = node.next = undefined;
  }

  touch(node: N): void {
    if (this.#head === node) return;
    this.remove(node);
    this.pushNewest(node);
  }

  clear(): void {
    this.#head = this.#tail = undefined;
  }
}
