/*
 * pg_compat.h: the server API differences between PostgreSQL 15 and 19,
 * the only place apikey tests PG_VERSION_NUM.  The code calls the names
 * below; each comment says in which version the server changed.
 *
 * Tested (built and the suites run): 15, 17, 18, 19.  16 is built by
 * reasoning: it has 15's procarray API (lxid, pgprocno, MyBackendId) and
 * 17's ACL and varatt.h (both came in 16).
 */
#ifndef APIKEY_PG_COMPAT_H
#define APIKEY_PG_COMPAT_H

#include "postgres.h"

#include "access/genam.h"
#include "access/tableam.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/arrayaccess.h"
#include "utils/hsearch.h"

#if PG_VERSION_NUM < 150000
#error "apikey needs PostgreSQL 15 or later"
#endif

/* 16: the varlena macros (VARSIZE, VARDATA, ...) moved out of postgres.h */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/* 17: storage/backendid.h (MyBackendId) became storage/procnumber.h */
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#else
#include "storage/backendid.h"
#endif

#if PG_VERSION_NUM >= 160000
#include "catalog/pg_proc.h"
#endif

/*
 * 16: pg_proc_aclcheck(fn, role, mode) became
 * object_aclcheck(ProcedureRelationId, fn, role, mode).
 */
static inline AclResult
ak_proc_aclcheck(Oid proc_oid, Oid roleid, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(ProcedureRelationId, proc_oid, roleid, mode);
#else
	return pg_proc_aclcheck(proc_oid, roleid, mode);
#endif
}

/*
 * The local id of this backend's top-level transaction.
 * 17: PGPROC.lxid moved into PGPROC.vxid.lxid.
 */
#if PG_VERSION_NUM >= 170000
#define AK_MY_LXID (MyProc->vxid.lxid)
#else
#define AK_MY_LXID (MyProc->lxid)
#endif

/*
 * This process's index in ProcGlobal->allProcs (for SetLatch on another
 * process's procLatch).  17: PGPROC.pgprocno is gone; MyProcNumber is the
 * same number (GetNumberFromPGProc(MyProc)).
 */
#if PG_VERSION_NUM >= 170000
#define AK_MY_PROC_INDEX ((int) MyProcNumber)
#else
#define AK_MY_PROC_INDEX (MyProc->pgprocno)
#endif

/*
 * This backend's slot in an array of MaxBackends per-backend slots,
 * 0-based, or -1 when it has none.  17: the 1-based MyBackendId
 * (InvalidBackendId -1) became the 0-based MyProcNumber
 * (INVALID_PROC_NUMBER -1); regular backends, autovacuum, background
 * workers and WAL senders all have one below MaxBackends in both, auxiliary
 * processes have MaxBackends or more from 17 (the caller checks the bound).
 */
static inline int
ak_backend_slot(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProcNumber == INVALID_PROC_NUMBER ? -1 : (int) MyProcNumber;
#else
	return MyBackendId == InvalidBackendId ? -1 : (int) MyBackendId - 1;
#endif
}

/*
 * The parameters of an ExecutorRun hook, and the arguments it passes on to
 * the previous hook or standard_ExecutorRun.  18: the last one, bool
 * execute_once, is gone.
 */
#if PG_VERSION_NUM >= 180000
#define AK_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define AK_EXECUTOR_RUN_ARGS queryDesc, direction, count
#else
#define AK_EXECUTOR_RUN_PARAMS \
	QueryDesc *queryDesc, ScanDirection direction, uint64 count, bool execute_once
#define AK_EXECUTOR_RUN_ARGS queryDesc, direction, count, execute_once
#endif

/*
 * The NOTIFY queue's size in pages, of which pg_notification_queue_usage()
 * is the fraction in use and past which NOTIFY fails (54000).  17: the
 * setting max_notify_queue_pages (1048576 by default, as before); until
 * then half the pages of its SLRU.  Needs access/slru.h and commands/async.h.
 */
#if PG_VERSION_NUM >= 170000
#define AK_NOTIFY_QUEUE_PAGES ((double) max_notify_queue_pages)
#else
#define AK_NOTIFY_QUEUE_PAGES ((double) SLRU_PAGES_PER_SEGMENT * 0x10000 / 2)
#endif

/*
 * Begin an index scan without instrumentation.
 * 18: a 4th argument, IndexScanInstrumentation * (NULL: none).
 * 19: a 7th, uint32 flags, the table scan options (ScanOptions) for the
 * heap fetches; 0 is SO_NONE, what the scan did before (no read-only hint,
 * no instrumentation).
 */
static inline IndexScanDesc
ak_index_beginscan(Relation heap, Relation index, Snapshot snapshot,
				   int nkeys, int norderbys)
{
#if PG_VERSION_NUM >= 190000
	return index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys, 0);
#elif PG_VERSION_NUM >= 180000
	return index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys);
#else
	return index_beginscan(heap, index, snapshot, nkeys, norderbys);
#endif
}

/*
 * Begin a sequential scan.  19: a 5th argument, uint32 flags (ScanOptions
 * given by the caller; 0, SO_NONE, is the earlier behaviour).
 */
static inline TableScanDesc
ak_table_beginscan(Relation rel, Snapshot snapshot, int nkeys, struct ScanKeyData *key)
{
#if PG_VERSION_NUM >= 190000
	return table_beginscan(rel, snapshot, nkeys, key, 0);
#else
	return table_beginscan(rel, snapshot, nkeys, key);
#endif
}

/* 19: table_index_fetch_begin takes uint32 flags (ScanOptions; 0 as before) */
static inline IndexFetchTableData *
ak_table_index_fetch_begin(Relation rel)
{
#if PG_VERSION_NUM >= 190000
	return table_index_fetch_begin(rel, 0);
#else
	return table_index_fetch_begin(rel);
#endif
}

/*
 * A shared hash table of a fixed number of entries.  19: ShmemInitHash
 * takes one size (int64 nelems) where it took an initial and a maximum
 * (long init_size, long max_size), which apikey always gave equal.
 */
static inline HTAB *
ak_shmem_init_hash(const char *name, int nelems, HASHCTL *info, int flags)
{
#if PG_VERSION_NUM >= 190000
	return ShmemInitHash(name, nelems, info, flags);
#else
	return ShmemInitHash(name, nelems, nelems, info, flags);
#endif
}

/*
 * Iterate an array's elements.  19: the element type (length, by-value,
 * alignment) is given once to array_iter_setup (5 arguments) instead of to
 * every array_iter_next (3 arguments); callers give it to both here.
 */
static inline void
ak_array_iter_setup(array_iter *it, AnyArrayType *a, int elmlen, bool elmbyval, char elmalign)
{
#if PG_VERSION_NUM >= 190000
	array_iter_setup(it, a, elmlen, elmbyval, elmalign);
#else
	array_iter_setup(it, a);
#endif
}

static inline Datum
ak_array_iter_next(array_iter *it, bool *isnull, int i, int elmlen, bool elmbyval, char elmalign)
{
#if PG_VERSION_NUM >= 190000
	return array_iter_next(it, isnull, i);
#else
	return array_iter_next(it, isnull, i, elmlen, elmbyval, elmalign);
#endif
}

#endif							/* APIKEY_PG_COMPAT_H */
