/*
 * notify.c
 *		NOTIFY approvals: one place that sends, honouring approvals.notify.
 */
#include "postgres.h"

#include "commands/async.h"

#include "approvals.h"

/* NOTIFY approvals, payload (delivered at commit), unless approvals.notify is off. */
void
ApNotify(const char *payload)
{
	if (!ap_notify)
		return;
	Async_Notify("approvals", payload);
}
