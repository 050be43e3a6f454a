/*
 * audit.c
 *		The audit log approvals.events: append-only, whoever asks (the trigger
 *		refuses UPDATE, DELETE and TRUNCATE, its owner and superusers included).
 */
#include "postgres.h"

#include "commands/trigger.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_events_append_only);

/* Trigger on approvals.events: the audit log is append-only. */
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
			 errmsg("approvals.events is append-only"),
			 errdetail("%s is not allowed on the audit log.", op)));
	PG_RETURN_NULL();
}
