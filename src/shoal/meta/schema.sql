-- Shoal metadata schema, SQLite dialect (read by shoal/meta/sqlite.py).
-- Each "-- migration: N" section is applied once, in order, in one transaction, on start().
-- Never edit a released section: add a new one. Statements end with ";" at end of line.

-- migration: 1
CREATE TABLE topics (
    name TEXT PRIMARY KEY,
    topic_id TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    configs TEXT NOT NULL,
    created_at INTEGER NOT NULL);

CREATE TABLE partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0,
    log_start_offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;

-- Index rows point at files by an integer surrogate: smaller rows, cheaper joins.
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    file_id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    committed INTEGER NOT NULL);

CREATE TABLE batches (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    file_ref INTEGER NOT NULL,
    byte_pos INTEGER NOT NULL,
    byte_len INTEGER NOT NULL,
    record_count INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    producer_id INTEGER NOT NULL,
    producer_epoch INTEGER NOT NULL,
    base_sequence INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, base_offset)) WITHOUT ROWID;

-- Garbage collection asks "does any row still point into this file?".
CREATE INDEX batches_by_file ON batches (file_ref);

-- AUTOINCREMENT: a producer id is never handed out twice, even after row deletion.
CREATE TABLE producers (
    producer_id INTEGER PRIMARY KEY AUTOINCREMENT,
    transactional_id TEXT UNIQUE,
    epoch INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);

-- recent: the last 5 (base_sequence, last_sequence, base_offset), see meta/commits.py.
CREATE TABLE producer_state (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    producer_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    recent BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, producer_id)) WITHOUT ROWID;

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
    updated_at INTEGER NOT NULL);

CREATE TABLE group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    leader_epoch INTEGER NOT NULL,
    metadata TEXT,
    commit_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)) WITHOUT ROWID;

-- delete_topic drops the topic's commits of every group.
CREATE INDEX group_offsets_by_topic ON group_offsets (topic, partition);

-- migration: 3
-- Cluster membership (meta/agent_store.py). A row per running agent, rewritten by its heartbeat;
-- node ids are unique among rows (stale rows are deleted before an id is handed out again).
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    node_id INTEGER NOT NULL UNIQUE,
    host TEXT NOT NULL,
    kafka_port INTEGER NOT NULL,
    http_port INTEGER NOT NULL,
    az TEXT NOT NULL,
    agent_group TEXT NOT NULL,
    roles TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    heartbeat_at_ms INTEGER NOT NULL);

-- migration: 4
-- Coordinator fencing (docs/groups.md): the epoch of the agent that last claimed each group.
-- Group and offset writes carry their coordinator's epoch and are refused once it is older.
-- Rows are never deleted (a deleted group's epoch stays, so a stale claim stays stale).
CREATE TABLE group_coordinators (
    group_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL);

-- migration: 5
-- When a file lost its last index row (retention, DeleteRecords, topic deletion): the GC's grace
-- counts from the later of this and created_at, so a reader that looked the rows up just before
-- they went still finds the file (DESIGN.md invariant 3). NULL: never released.
ALTER TABLE files ADD COLUMN released_at INTEGER;

-- migration: 6
-- File compaction (jobs/compaction.py): how many merges a file's bytes went through. Writers'
-- files are level 0; a merge of files of levels <= n writes level n + 1.
ALTER TABLE files ADD COLUMN level INTEGER NOT NULL DEFAULT 0;

-- migration: 7
-- Garbage collection that scales (docs/jobs.md): a file no row points into is either never
-- committed or released (every statement that drops rows stamps released_at), so the GC reads
-- these two small partial indexes instead of walking every file. Files emptied before
-- migration 5 stamped nothing: they are released now.
UPDATE files SET released_at = created_at WHERE committed = 1 AND released_at IS NULL AND NOT EXISTS (SELECT 1 FROM batches AS b WHERE b.file_ref = files.id);
CREATE INDEX files_released ON files (released_at) WHERE released_at IS NOT NULL;
CREATE INDEX files_uncommitted ON files (created_at) WHERE committed = 0 AND released_at IS NULL;
