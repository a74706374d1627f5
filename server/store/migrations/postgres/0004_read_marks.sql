-- MARK_READ as a mark per user: every notification with an id up to the
-- mark counts as read, whenever it is stored. Notification ids are handed
-- out by the shards but committed by the batch writer, so a notification
-- can commit after a mark that covers its id; a per-row flag set by the
-- mark would leave it unread. Rows' own `read` flags (set before this
-- migration) still count.
CREATE TABLE notification_marks (
    user_id bigint PRIMARY KEY,
    up_to   bigint NOT NULL
);
