/*
 * audit.c
 *		The audit log approvals.events and its seals approvals.audit_seals:
 *		append-only, whoever asks (the trigger refuses UPDATE, DELETE and
 *		TRUNCATE, their owner and superusers included; a superuser who disables
 *		it is what the seals are for).
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "utils/rel.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_events_append_only);

/* Trigger on approvals.events and approvals.audit_seals: they are append-only. */
Datum
approvals_events_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("approvals.events_append_only() must be called as a trigger")));
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		op = "TRUNCATE";
	else
		op = "this operation";
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("approvals.%s is append-only", RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("%s is not allowed on the audit log.", op)));
	PG_RETURN_NULL();
}
