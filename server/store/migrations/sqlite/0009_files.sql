-- Uploaded files (attachments, SPEC.md §13): one row per upload. The bytes
-- are not here: they live once per content hash under DATA_DIR/files/
-- (`sha256`), however many rows name them. AUTOINCREMENT: a file id is
-- never reused, so a link to a forgotten file never reaches a newer one.
--
-- `message_seq`: the message of `room_id` that references the file; NULL
-- while nothing does (housekeeping forgets such uploads after a day), 0
-- while a message being sent claims it. `deleted`: the file's message was
-- deleted or the upload was never referenced; it is no longer served, and
-- housekeeping removes the row once the bytes of its hash are gone.
-- No foreign keys: a file outlives nothing it names, and housekeeping
-- removes it.
CREATE TABLE files (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id      INTEGER NOT NULL,
    uploader_id  INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size > 0),
    sha256       BLOB    NOT NULL CHECK (length(sha256) = 32),
    width        INTEGER,
    height       INTEGER,
    created_at   INTEGER NOT NULL,
    message_seq  INTEGER CHECK (message_seq >= 0),
    deleted      INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

-- Whether a hash is still used (the blob may go when no live row has it).
CREATE INDEX files_by_hash ON files (sha256);
-- A message's files (deleting a message deletes them).
CREATE INDEX files_by_message ON files (room_id, message_seq);
-- Uploads by age (housekeeping's "never referenced within a day").
CREATE INDEX files_by_age ON files (created_at);
