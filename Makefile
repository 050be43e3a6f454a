# PGXS build for the approvals extension.
#
# Layout:
#   src/*.c                      the C module (approvals.so)
#   sql/approvals--<ver>.sql     the extension script (installed as DATA)
#   sql/approvals_router*        the router extension's control file and script (DATA)
#   sql/<test>.sql               pg_regress inputs (listed in REGRESS)
#   expected/<test>.out          pg_regress and isolation expected outputs
#   test/isolation/specs/*.spec  isolation specs (listed in ISOLATION)
#   test/pgtap/*.sql             pgTAP suites, run by pg_prove (see test/run.sh)

EXTENSION  = approvals
MODULE_big = approvals
OBJS       = src/approvals.o src/call.o src/spi.o src/datum.o src/retry.o src/tenant.o \
             src/json.o src/notify.o src/audit.o src/handler.o src/policy.o src/claim.o \
             src/steps.o src/delegation.o src/inbox.o src/seal.o src/stats.o \
             src/expire.o src/batch_state.o src/batch_queue.o src/batch_chunk.o \
             src/batch_revert.o src/batch_run.o src/batch_api.o src/worker.o
DATA       = $(wildcard sql/approvals--*.sql)
# approvals_router: a second, SQL-only extension (a router database in front of
# several approvals nodes, with PL/Proxy); installed beside approvals.
DATA      += sql/approvals_router.control $(wildcard sql/approvals_router--*.sql)
PGFILEDESC = "approvals - approval workflows and bulk approval batches"

REGRESS      = claims batches
REGRESS_OPTS = --load-extension=approvals
ISOLATION      = decide_race resubmit_race notify batch_vs_decide batch_overlap batch_cancel step_quorum_race delegate_race revoke_race policy_submit_race seal_race batch_row_locks
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=approvals

# The library checks that the installed SQL objects are the version it was built for.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" approvals.control)

PG_CONFIG ?= pg_config
# -Wextra for our code; the server headers are included as system headers so
# their own unused parameters do not drown out ours.
PG_CPPFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server) -DAP_EXTVERSION='"$(EXTVERSION)"'
PG_CFLAGS   = -Wall -Wextra
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared header and on the version it is built for.
$(OBJS): src/approvals.h src/batch.h approvals.control
