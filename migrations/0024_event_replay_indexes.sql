-- A replay reads only what its user may see (issue 44, item 4). Before, it read the
-- log from `since` in id order and filtered in the server, so a user who may read
-- nothing (a pending account) replaying `since 0` on 8 sockets read 1,000 rows per
-- message for nothing and made ordinary reads 20x slower. Now the query asks for the
-- user's own events (this index, in id order) and, for a role that may read accounts,
-- the shared events of the topics the socket subscribed to (the GIN index when a topic
-- is rare, such as one account's; the primary key when it is common, as `payments`).
CREATE INDEX events_user_idx ON events (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX events_topics_idx ON events USING gin (topics);
