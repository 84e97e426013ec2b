/*-------------------------------------------------------------------------
 *
 * cluster_state.c
 *		  Where the state all sessions of the cluster share lives, how it
 *		  is locked and saved, and how it is cleaned up after a backend
 *
 * Clover's exports are scarce: a few may run at once per merchant, each
 * takes seconds to minutes, and its files stay for a day.  So every session
 * of the cluster, in every database, shares one registry of the exports it
 * knows (export_registry.c), one line for the slots of each merchant and
 * one request limiter per token and one per app (export_slots.c).  This
 * file gives them a home that needs no shared_preload_libraries:
 *
 * - The state is a fixed-size struct (cluster_state.h, about 70 kB) in
 *	 PostgreSQL's main shared memory, created by the first backend that
 *	 needs it with ShmemInitStruct.  PostgreSQL keeps some spare shared
 *	 memory for structures like this one (pg_prewarm's autoprewarm does the
 *	 same when it is not preloaded); when the library is preloaded, the
 *	 space is requested at server start instead.  Shared memory works on a
 *	 hot standby and in read-only transactions, where a catalog table could
 *	 not be written.
 * - One LWLock guards it all.  Code holding it never raises an error,
 *	 allocates or waits, so no error or cancel leaves it half-changed.
 * - What a backend holds (a place in line, a request in flight, the export
 *	 it polls) is recorded with its pid and run, and given back by the run
 *	 (CloverClusterReleaseRun, from its memory context's reset callback)
 *	 or, whatever happens, by this file's before_shmem_exit callback: an
 *	 error, a cancel, pg_terminate_backend alike.  A backend that crashes
 *	 makes the postmaster reinitialize all shared memory, so nothing it
 *	 held survives.
 * - The registry's exports are also written to a small file in the data
 *	 directory (REGISTRY_FILE), read back when the state is created: after
 *	 a restart, even after a crash, recent exports are still reused.  The
 *	 file holds export ids, windows, statuses and times only: never a token
 *	 and never a file URL (those are bearer secrets; a scan fetches the URLs
 *	 again with its own token).
 *
 * IDENTIFICATION
 *		  src/cluster_state.c
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "cluster_state.h"
#include "clover_export_fdw.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

/* the registry's file, in the data directory (the backend's cwd) */
#define REGISTRY_FILE			"clover_export_fdw.registry"
#define REGISTRY_MAGIC			0x434C5652	/* "CLVR" */
#define REGISTRY_FORMAT			2	/* 2: entries know their API host */

/*
 * The shared struct's name carries the version of its layout, bumped with
 * every change of ClusterState: a backend that loaded a newer library after
 * an upgrade, before the server restarted, makes a struct of its own rather
 * than misread the one older backends share (2: app buckets, hosts)
 */
#define CLUSTER_LAYOUT			2
#define CLUSTER_SHMEM_NAME		"clover_export_fdw state " CppAsString2(CLUSTER_LAYOUT)

/* The registry file: this header, then count RegistryEntry structs */
typedef struct RegistryFileHeader
{
	uint32		magic;
	uint32		format;
	uint32		entry_size;		/* sizeof(RegistryEntry) when written */
	uint32		count;
} RegistryFileHeader;

static ClusterState *cluster = NULL;
static uint32 last_run = 0;
static bool save_failed = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;

/*
 * cluster_shmem_request
 *		When preloaded, reserve the state's shared memory at server start
 */
static void
cluster_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ClusterState)));
}

/*
 * CloverClusterInit
 *		Module load: when in shared_preload_libraries, reserve the space
 *		(without it, the state comes from PostgreSQL's spare shared memory)
 */
void
CloverClusterInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cluster_shmem_request;
}

/*
 * ClusterNow
 *		Seconds on the monotonic clock, which every process of the machine
 *		shares: the clock of every shared timer
 */
double
ClusterNow(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * load_registry
 *		Read the registry file into a new state; a missing, short or
 *		foreign file is ignored (it is only a cache of Clover's exports)
 *
 * Exports that were in flight come back without an owner, so a scan that
 * needs one adopts it; exports still being created are dropped, since
 * nobody knows whether Clover created them.
 */
static void
load_registry(ClusterState *cs)
{
	RegistryFileHeader hdr;
	int			fd;
	int			i,
				n = 0;

	fd = open(REGISTRY_FILE, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
		return;
	if (read(fd, &hdr, sizeof(hdr)) == sizeof(hdr) &&
		hdr.magic == REGISTRY_MAGIC && hdr.format == REGISTRY_FORMAT &&
		hdr.entry_size == sizeof(RegistryEntry))
	{
		for (i = 0; i < (int) hdr.count && n < CLUSTER_MAX_EXPORTS; i++)
		{
			RegistryEntry *e = &cs->exports[n];

			if (read(fd, e, sizeof(*e)) != sizeof(*e))
				break;
			e->owner_pid = 0;
			e->owner_run = 0;
			e->merchant_id[CLUSTER_ID_MAX] = '\0';
			e->export_id[CLUSTER_ID_MAX] = '\0';
			if (e->merchant_key == 0 || e->status == EXPORT_CREATING ||
				e->status == EXPORT_FREE || e->status > EXPORT_FAILED)
				memset(e, 0, sizeof(*e));
			else
				n++;
		}
	}
	close(fd);
}

/*
 * ClusterStateSave
 *		Write the registry's known exports to its file, if it changed since
 *		the last write; the caller holds the lock exclusively
 *
 * The file is written whole under a temporary name and renamed over the
 * old one, so a reader never sees half of it.  It is not fsync'd: it is a
 * cache, and losing it costs only new exports.  A failure is reported
 * once per backend by CloverClusterReportSaveFailure.
 */
void
ClusterStateSave(ClusterState *cs)
{
	char		tmp[MAXPGPATH];
	RegistryFileHeader hdr;
	int			fd;
	int			i;
	bool		ok;

	if (cs->saved_version == cs->version)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", REGISTRY_FILE, MyProcPid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		save_failed = true;
		return;
	}
	hdr.magic = REGISTRY_MAGIC;
	hdr.format = REGISTRY_FORMAT;
	hdr.entry_size = sizeof(RegistryEntry);
	hdr.count = 0;
	for (i = 0; i < CLUSTER_MAX_EXPORTS; i++)
	{
		if (cs->exports[i].merchant_key != 0 &&
			cs->exports[i].export_id[0] != '\0')
			hdr.count++;
	}
	ok = write(fd, &hdr, sizeof(hdr)) == sizeof(hdr);
	for (i = 0; ok && i < CLUSTER_MAX_EXPORTS; i++)
	{
		if (cs->exports[i].merchant_key != 0 &&
			cs->exports[i].export_id[0] != '\0')
			ok = write(fd, &cs->exports[i], sizeof(RegistryEntry)) ==
				sizeof(RegistryEntry);
	}
	if (close(fd) != 0)
		ok = false;
	if (ok && rename(tmp, REGISTRY_FILE) == 0)
		cs->saved_version = cs->version;
	else
	{
		(void) unlink(tmp);
		save_failed = true;
	}
}

/*
 * CloverClusterReportSaveFailure
 *		Warn, once per backend, that the registry file could not be written
 *		(called without the lock)
 */
void
CloverClusterReportSaveFailure(void)
{
	static bool reported = false;

	if (!save_failed || reported)
		return;
	reported = true;
	ereport(WARNING,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\" in the data directory",
					REGISTRY_FILE),
			 errdetail("Exports are still shared while the server runs, but are forgotten at its next restart."),
			 errhint("Check the data directory's free space and permissions.")));
}

/*
 * ClusterClaimAdd
 *		A free claim of kind for this backend's run, or NULL if all are taken
 */
Claim *
ClusterClaimAdd(ClusterState *cs, ClaimKind kind, uint32 run)
{
	int			i;

	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		Claim	   *c = &cs->claims[i];

		if (c->kind == CLAIM_FREE)
		{
			memset(c, 0, sizeof(*c));
			c->kind = kind;
			c->pid = MyProcPid;
			c->run = run;
			return c;
		}
	}
	return NULL;
}

/*
 * ClusterClaimFind
 *		This backend's first claim of kind for run with these key, entry
 *		and generation (0 where the kind has none), or NULL
 */
Claim *
ClusterClaimFind(ClusterState *cs, ClaimKind kind, uint32 run, uint64 key,
				 int entry, uint32 generation)
{
	int			i;

	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		Claim	   *c = &cs->claims[i];

		if (c->kind == kind && c->pid == MyProcPid && c->run == run &&
			c->key == key && c->entry == entry &&
			c->generation == generation)
			return c;
	}
	return NULL;
}

/*
 * ClusterClaimRelease
 *		Give back this backend's first claim of kind for run with these key,
 *		entry and generation, if it holds one (takes the lock)
 */
void
ClusterClaimRelease(ClaimKind kind, uint32 run, uint64 key, int entry,
					uint32 generation)
{
	ClusterState *cs = ClusterStateAttach();
	Claim	   *c;

	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	c = ClusterClaimFind(cs, kind, run, key, entry, generation);
	if (c)
		c->kind = CLAIM_FREE;
	LWLockRelease(&cs->lock);
}

/*
 * ClusterClaimCount
 *		How many claims of kind for key all backends hold
 */
int
ClusterClaimCount(ClusterState *cs, ClaimKind kind, uint64 key)
{
	int			n = 0;
	int			i;

	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		if (cs->claims[i].kind == kind && cs->claims[i].key == key)
			n++;
	}
	return n;
}

/*
 * ClusterReleaseClaims
 *		Give back the claims of backend pid: of one run, or all of them
 */
void
ClusterReleaseClaims(ClusterState *cs, int pid, bool all_runs, uint32 run)
{
	int			i;

	for (i = 0; i < CLUSTER_MAX_CLAIMS; i++)
	{
		Claim	   *c = &cs->claims[i];

		if (c->kind != CLAIM_FREE && c->pid == pid &&
			(all_runs || c->run == run))
			c->kind = CLAIM_FREE;
	}
}

/*
 * cluster_exit
 *		Backend exit, however it comes: give back everything it holds
 */
static void
cluster_exit(int code, Datum arg)
{
	ClusterState *cs = cluster;

	if (cs == NULL)
		return;
	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	ClusterReleaseClaims(cs, MyProcPid, true, 0);
	RegistryOrphan(cs, MyProcPid, true, 0);
	ClusterStateSave(cs);
	LWLockRelease(&cs->lock);
	cluster = NULL;
}

/*
 * no_room_callback
 *		Error context while the state is created: how to make room
 */
static void
no_room_callback(void *arg)
{
	errhint("Add clover_export_fdw to shared_preload_libraries to reserve its shared memory at server start.");
}

/*
 * ClusterStateAttach
 *		The shared state, created (and the registry file read) by the first
 *		backend of the cluster that needs it
 */
ClusterState *
ClusterStateAttach(void)
{
	ErrorContextCallback errcb;
	ClusterState *cs;
	bool		found;

	if (cluster)
		return cluster;
	errcb.callback = no_room_callback;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cs = ShmemInitStruct(CLUSTER_SHMEM_NAME, sizeof(ClusterState), &found);
	if (!found)
	{
		memset(cs, 0, sizeof(ClusterState));
		LWLockInitialize(&cs->lock, LWLockNewTrancheId());
		cs->next_ticket = 1;
		load_registry(cs);
	}
	LWLockRelease(AddinShmemInitLock);
	error_context_stack = errcb.previous;

	LWLockRegisterTranche(cs->lock.tranche, "clover_export_fdw");
	before_shmem_exit(cluster_exit, 0);
	cluster = cs;
	return cs;
}

/*
 * CloverClusterNewRun
 *		A new run of this backend: the name under which its claims are kept
 */
uint32
CloverClusterNewRun(void)
{
	(void) ClusterStateAttach();
	if (++last_run == 0)
		last_run = 1;
	return last_run;
}

/*
 * CloverClusterReleaseRun
 *		Give back everything a run holds: its places in line, its requests
 *		in flight, its uses, and the exports it polls (they stay in the
 *		registry, for another scan to adopt)
 */
void
CloverClusterReleaseRun(uint32 run)
{
	ClusterState *cs = cluster;

	if (cs == NULL || run == 0)
		return;
	LWLockAcquire(&cs->lock, LW_EXCLUSIVE);
	ClusterReleaseClaims(cs, MyProcPid, false, run);
	RegistryOrphan(cs, MyProcPid, false, run);
	ClusterStateSave(cs);
	LWLockRelease(&cs->lock);
}
