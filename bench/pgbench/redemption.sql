-- The row work of one Tally portal redemption as one plain transaction, for pgbench: lock the account
-- row and the reward's stock row, update both, insert the transaction, the receipt and the processed
-- event. One commit (one WAL flush) per redemption, and every client takes the same stock row, as a
-- flash sale of one reward does. :accounts is set with -D.
\set aid random(1, :accounts)
BEGIN;
SELECT balance FROM acct WHERE id = :aid FOR UPDATE;
SELECT inventory FROM reward WHERE id = 1 FOR UPDATE;
UPDATE acct SET balance = balance - 1, version = version + 1 WHERE id = :aid;
UPDATE reward SET inventory = inventory - 1 WHERE id = 1;
INSERT INTO tx (acct_id, idempotency_key, amount, hash) VALUES (:aid, gen_random_uuid()::text, 1, md5(random()::text));
INSERT INTO redemption (receipt_id, tx_seq, acct_id, reward_id, status) VALUES (gen_random_uuid()::text, lastval(), :aid, 1, 'manual');
INSERT INTO ev (event_id, tx_seq, response) VALUES (gen_random_uuid()::text, lastval(), '{"status":"applied"}');
END;
