/*-------------------------------------------------------------------------
 *
 * cluster_state.h
 *		  The layout of the state all sessions of the cluster share
 *
 * Private to the files that read and write it: cluster_state.c (where it
 * lives, its lock, its file, cleaning up after a backend),
 * export_registry.c (the exports known), registry_sql.c (the registry in
 * SQL) and export_slots.c (slots for new exports and the request limiters
 * of each token and app).  Everything else goes through the functions
 * clover_export_fdw.h declares for them.
 *
 * Every field is read and written only with ClusterState.lock held, and no
 * code holding it may raise an error, allocate memory or wait: a backend
 * that fails or is cancelled never leaves the state half-changed.
 *
 * IDENTIFICATION
 *		  src/cluster_state.h
 *-------------------------------------------------------------------------
 */
#ifndef CLUSTER_STATE_H
#define CLUSTER_STATE_H

#include "clover_core.h"
#include "datatype/timestamp.h"
#include "storage/lwlock.h"

/* how many exports, claims and tokens the cluster keeps track of */
#define CLUSTER_MAX_EXPORTS			512
#define CLUSTER_MAX_CLAIMS			512
#define CLUSTER_MAX_LIMITERS		64
#define CLUSTER_MAX_APPS			8

/*
 * longest merchant id and export id kept: Clover's have 13 characters (an
 * export with a longer id is not registered)
 */
#define CLUSTER_ID_MAX				15

/* What Clover last said about a registered export */
typedef enum ExportStatus
{
	EXPORT_FREE = 0,			/* an unused entry */
	EXPORT_CREATING,			/* the POST is in flight: no id yet */
	EXPORT_PENDING,
	EXPORT_IN_PROGRESS,
	EXPORT_DONE,
	EXPORT_FAILED				/* failed for good: waiting scans fail too */
} ExportStatus;

/*
 * One export of one API host and merchant.  An export in flight at Clover
 * (CREATING, PENDING, IN_PROGRESS) with an owner holds one of its
 * merchant's slots; the owner is the one run that polls it.  Without an
 * owner (its backend ended) it holds no slot, and any scan that needs it
 * may adopt it.
 */
typedef struct RegistryEntry
{
	uint64		merchant_key;	/* API host and merchant; 0: a free entry */
	uint64		host_key;		/* API host alone */
	uint32		generation;		/* changes whenever the entry is reused */
	uint8		status;			/* ExportStatus */
	uint8		export_type;	/* CloverExportType */
	bool		to_now;			/* the window reached its statement's
								 * start: it holds all Clover had then */
	bool		retried;		/* the one more export the rules allow has
								 * been made */
	int32		percent;		/* Clover's percentComplete, -1 unknown */
	char		merchant_id[CLUSTER_ID_MAX + 1];
	char		export_id[CLUSTER_ID_MAX + 1];	/* "" while CREATING */
	int64		start_ms;		/* the window Clover exports */
	int64		end_ms;
	TimestampTz created;		/* when the POST was answered (or sent) */
	int64		available_until;	/* epoch ms; 0 unknown */
	int			owner_pid;		/* 0: nobody polls it */
	uint32		owner_run;
	int			creator_pid;	/* the statement that created it: its scans */
	TimestampTz creator_stmt;	/* share it even with reuse_exports 0 */
} RegistryEntry;

/* What a claim holds */
typedef enum ClaimKind
{
	CLAIM_FREE = 0,
	CLAIM_LINE,					/* in line for a slot of merchant key */
	CLAIM_USE,					/* a scan uses export entry */
	CLAIM_REQUEST				/* an API request in flight on limiter */
} ClaimKind;

/*
 * Something one run of one backend holds.  Claims are given back by the
 * run (CloverClusterReleaseRun) or, whatever happens to it, when its
 * backend exits; a crashed backend makes the postmaster start the whole
 * shared state afresh.
 */
typedef struct Claim
{
	uint8		kind;			/* ClaimKind */
	int			pid;
	uint32		run;
	uint64		key;			/* LINE: merchant key; REQUEST: token key */
	uint64		host;			/* LINE, REQUEST: the API host's key */
	int			limit;			/* LINE: max_concurrent_exports */
	double		asked_at;		/* LINE: when its run last asked for a slot */
	int			entry;			/* USE: index in exports */
	uint32		generation;		/* USE: the entry's generation */
	uint64		ticket;			/* LINE: place in line, lowest first */
} Claim;

/* Requests of one token (and API host), all sessions together */
typedef struct TokenLimiter
{
	uint64		token_key;		/* 0: unused */
	double		last_used;		/* monotonic seconds */
	CloverRateLimiter rl;		/* in_flight unused: claims count them */
} TokenLimiter;

/* Requests of one app (all tokens of one API host), all sessions together */
typedef struct AppLimiter
{
	uint64		host_key;		/* 0: unused */
	double		last_used;		/* monotonic seconds */
	CloverRateLimiter rl;		/* in_flight unused: claims count them */
} AppLimiter;

typedef struct ClusterState
{
	LWLock		lock;
	uint64		next_ticket;
	uint64		version;		/* bumped by every change worth saving */
	uint64		saved_version;	/* what the registry file holds */
	RegistryEntry exports[CLUSTER_MAX_EXPORTS];
	Claim		claims[CLUSTER_MAX_CLAIMS];
	TokenLimiter limiters[CLUSTER_MAX_LIMITERS];
	AppLimiter	apps[CLUSTER_MAX_APPS];
} ClusterState;

/* cluster_state.c */
extern ClusterState *ClusterStateAttach(void);
extern void ClusterStateSave(ClusterState *cs);
extern Claim *ClusterClaimAdd(ClusterState *cs, ClaimKind kind, uint32 run);
extern Claim *ClusterClaimFind(ClusterState *cs, ClaimKind kind, uint32 run,
							   uint64 key, int entry, uint32 generation);
extern void ClusterClaimRelease(ClaimKind kind, uint32 run, uint64 key,
								int entry, uint32 generation);
extern int	ClusterClaimCount(ClusterState *cs, ClaimKind kind, uint64 key);
extern void ClusterReleaseClaims(ClusterState *cs, int pid, bool all_runs,
								 uint32 run);
extern double ClusterNow(void);

/* export_registry.c */
struct CloverFdwOptions;
extern uint64 RegistryHostKey(const char *api_base);
extern int	RegistryInFlight(ClusterState *cs, uint64 merchant_key);
extern int	RegistryHostInFlight(ClusterState *cs, uint64 host_key);
extern int	RegistryFindCover(ClusterState *cs,
							  const struct CloverFdwOptions *opts,
							  const CloverWindow *window, TimestampTz now);
extern int	RegistryAddCreating(ClusterState *cs,
								const struct CloverFdwOptions *opts,
								uint32 run, const CloverWindow *window,
								bool to_now, TimestampTz stmt_start,
								TimestampTz now);
extern int	RegistryNewEntry(ClusterState *cs, TimestampTz now);
extern int64 RegistryForget(ClusterState *cs, const uint64 *keys, int nkeys);
extern void RegistryOrphan(ClusterState *cs, int pid, bool all_runs,
						   uint32 run);

#endif							/* CLUSTER_STATE_H */
