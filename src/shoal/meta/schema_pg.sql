-- Shoal metadata schema, PostgreSQL dialect (read by shoal/meta/postgres.py).
-- Same tables and meaning as schema.sql (SQLite); versions are numbered independently.
-- Each "-- migration: N" section is applied once, in order, in one transaction, on start(),
-- under an advisory lock. Never edit a released section: add a new one.
-- Statements end with ";" at end of line.

-- migration: 1
CREATE TABLE topics (
    name TEXT PRIMARY KEY,
    topic_id UUID NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    configs TEXT NOT NULL,
    created_at BIGINT NOT NULL);

-- The row every commit locks (SELECT ... FOR UPDATE): it serialises offset assignment.
-- fillfactor leaves room for HOT updates of next_offset (no index column changes).
CREATE TABLE partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL DEFAULT 0,
    log_start_offset BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)) WITH (fillfactor = 50);

-- Index rows point at files by an integer surrogate: smaller rows, cheaper joins.
CREATE TABLE files (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    committed BOOLEAN NOT NULL);

-- Garbage collection scans by age.
CREATE INDEX files_by_created_at ON files (created_at);

CREATE TABLE batches (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    base_offset BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    file_ref BIGINT NOT NULL,
    byte_pos BIGINT NOT NULL,
    byte_len INTEGER NOT NULL,
    record_count INTEGER NOT NULL,
    max_timestamp BIGINT NOT NULL,
    producer_id BIGINT NOT NULL,
    producer_epoch INTEGER NOT NULL,
    base_sequence INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, base_offset));

-- Garbage collection asks "does any row still point into this file?".
CREATE INDEX batches_by_file ON batches (file_ref);

-- An identity never hands out a value twice, even after row deletion.
CREATE TABLE producers (
    producer_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transactional_id TEXT UNIQUE,
    epoch INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL);

-- recent: the last 5 (base_sequence, last_sequence, base_offset), see meta/commits.py.
-- Rewritten by every idempotent commit: no index on updated_at (expire_producers, a rare job,
-- scans instead) and page room, so the rewrite is a HOT update that touches no index.
CREATE TABLE producer_state (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    producer_id BIGINT NOT NULL,
    epoch INTEGER NOT NULL,
    recent BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (topic, partition, producer_id)) WITH (fillfactor = 70);

-- migration: 2
-- Consumer groups (meta/group_store.py). members: JSON list of StoredMember with base64 bytes,
-- rewritten whole when a generation completes (never per heartbeat).
CREATE TABLE consumer_groups (
    group_id TEXT PRIMARY KEY,
    protocol_type TEXT NOT NULL,
    generation INTEGER NOT NULL,
    protocol_name TEXT,
    leader TEXT,
    state TEXT NOT NULL,
    members TEXT NOT NULL,
    updated_at BIGINT NOT NULL);

CREATE TABLE group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset BIGINT NOT NULL,
    leader_epoch INTEGER NOT NULL,
    metadata TEXT,
    commit_time BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition));

-- delete_topic drops the topic's commits of every group.
CREATE INDEX group_offsets_by_topic ON group_offsets (topic, partition);

-- migration: 3
-- Cluster membership (meta/agent_store.py). A row per running agent, rewritten by its heartbeat
-- (fillfactor: heartbeat_at_ms is not indexed, so the rewrite is a HOT update); node ids are
-- unique among rows (stale rows are deleted before an id is handed out again).
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    node_id INTEGER NOT NULL UNIQUE,
    host TEXT NOT NULL,
    kafka_port INTEGER NOT NULL,
    http_port INTEGER NOT NULL,
    az TEXT NOT NULL,
    agent_group TEXT NOT NULL,
    roles TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    heartbeat_at_ms BIGINT NOT NULL) WITH (fillfactor = 70);

-- migration: 4
-- Coordinator fencing (docs/groups.md): the epoch of the agent that last claimed each group.
-- Group and offset writes carry their coordinator's epoch and are refused once it is older.
-- Rows are never deleted (a deleted group's epoch stays, so a stale claim stays stale).
CREATE TABLE group_coordinators (
    group_id TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL);

-- migration: 5
-- When a file lost its last index row (retention, DeleteRecords, topic deletion): the GC's grace
-- counts from the later of this and created_at, so a reader that looked the rows up just before
-- they went still finds the file (DESIGN.md invariant 3). NULL: never released.
ALTER TABLE files ADD COLUMN released_at BIGINT;

-- migration: 6
-- File compaction (jobs/compaction.py): how many merges a file's bytes went through. Writers'
-- files are level 0; a merge of files of levels <= n writes level n + 1.
ALTER TABLE files ADD COLUMN level INTEGER NOT NULL DEFAULT 0;

-- migration: 7
-- Garbage collection that scales (docs/jobs.md): a file no row points into is either never
-- committed or released (every statement that drops rows stamps released_at), so the GC reads
-- these two small partial indexes instead of walking every file. Files emptied before
-- migration 5 stamped nothing: they are released now.
UPDATE files SET released_at = created_at WHERE committed AND released_at IS NULL AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = files.id);
CREATE INDEX files_released ON files (released_at) WHERE released_at IS NOT NULL;
CREATE INDEX files_uncommitted ON files (created_at) WHERE NOT committed AND released_at IS NULL;
