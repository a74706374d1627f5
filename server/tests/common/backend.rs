//! Which store a test server runs on. Scenarios that must hold "against
//! both stores" are generated once per [`Backend`]; a Postgres run gets a
//! database of its own from `confab_testkit::postgres` (on `DATABASE_URL`,
//! else a throwaway cluster), whose policy also decides what a run without
//! Postgres does: print `SKIPPED (no Postgres): <test>`, or fail under
//! `CONFAB_REQUIRE_POSTGRES=1`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}
