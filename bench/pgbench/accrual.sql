-- The row work of one Tally accrual as one plain transaction, for pgbench: lock the account row,
-- update its balance and version, insert the transaction, insert the processed event. One commit (one
-- WAL flush) per accrual. :accounts is set with -D; -D accounts=1 puts every client on one row.
\set aid random(1, :accounts)
BEGIN;
SELECT balance FROM acct WHERE id = :aid FOR UPDATE;
UPDATE acct SET balance = balance + 10, version = version + 1 WHERE id = :aid;
INSERT INTO tx (acct_id, idempotency_key, amount, hash) VALUES (:aid, gen_random_uuid()::text, 10, md5(random()::text));
INSERT INTO ev (event_id, tx_seq, response) VALUES (gen_random_uuid()::text, lastval(), '{"status":"applied"}');
END;
