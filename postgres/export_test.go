package postgres

// RemoveAccountLock makes db's LockAccounts read accounts without locking them, as a ledger that forgot
// its lock would: tests use it to show that their checks fail without the lock.
func RemoveAccountLock(db *DB) { db.unlockedAccounts = true }
