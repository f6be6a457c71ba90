/**
 * A connection plus a cache of prepared statements: every query in the store is prepared
 * once per connection and reused, which is most of what makes inserts and lists fast.
 */
import type Database from 'better-sqlite3';

export type Row = Record<string, unknown>;

export class Sql {
  private statements = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  /** The prepared statement for `text`, compiled on first use. */
  q(text: string): Database.Statement {
    let s = this.statements.get(text);
    if (!s) {
      s = this.db.prepare(text);
      this.statements.set(text, s);
    }
    return s;
  }

  /** The first column of every row. */
  pluckAll<T>(text: string, ...params: unknown[]): T[] {
    const key = `pluck:${text}`;
    let s = this.statements.get(key);
    if (!s) {
      s = this.db.prepare(text).pluck(true);
      this.statements.set(key, s);
    }
    return s.all(...params) as T[];
  }

  /** Run `fn` in one DEFERRED transaction: several reads see one consistent snapshot. */
  read<T>(fn: () => T): T {
    return this.db.inTransaction ? fn() : this.db.transaction(fn).deferred();
  }

  /** Rows as arrays in column order: no per-row object with named keys, for big result sets. */
  rawAll<T extends unknown[]>(text: string, ...params: unknown[]): T[] {
    const key = `raw:${text}`;
    let s = this.statements.get(key);
    if (!s) {
      s = this.db.prepare(text).raw(true);
      this.statements.set(key, s);
    }
    return s.all(...params) as T[];
  }

  get<T = Row>(text: string, ...params: unknown[]): T | undefined {
    return this.q(text).get(...params) as T | undefined;
  }

  all<T = Row>(text: string, ...params: unknown[]): T[] {
    return this.q(text).all(...params) as T[];
  }

  run(text: string, ...params: unknown[]): Database.RunResult {
    return this.q(text).run(...params);
  }

  /** Run `fn` in one IMMEDIATE transaction (takes the write lock up front: no upgrade deadlocks). */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }
}
