-- Profiles (UPDATE_PROFILE, SPEC.md §5.2.5): on the account's own row,
-- read with it and written by the account writer like the password.
-- An empty display name or email means none is set (the rules forbid an
-- empty one), so every write binds text. `avatar_file` is reserved for an
-- uploaded image's file id: nothing writes it yet. Adding columns with a
-- constant default rewrites no rows (Postgres 11+).
ALTER TABLE users ADD COLUMN display_name text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN bio text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_file bigint;
