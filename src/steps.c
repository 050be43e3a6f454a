/*
 * steps.c
 *		A claim's steps: "two of finance, then the CFO above 10,000".
 *
 *		A steps document is a JSON array of 1..AP_MAX_STEPS objects
 *		{"name", "approvers", "required", "min_amount"}.  A claim goes through
 *		the steps that apply to its amount, in order; within the current step
 *		any of its approvers may decide, in any order, until `required` of them
 *		approved.  An approver who abstains leaves the step; a step that can no
 *		longer reach its quorum is escalated (any reviewer may then give the
 *		missing approvals).  The state lives in the claim row (current_step,
 *		step_approvals, step_abstained, step_escalated); claim.c stores it and
 *		appends the events these functions queue as follow-ups.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "mb/pg_wchar.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "approvals.h"

static const char *const step_members[] = {"name", "approvers", "required", "min_amount", NULL};

/* 22023 for a malformed step: names the step (1-based, and its name once known). */
static void
StepError(int step, const char *name, const char *problem)
{
	if (name)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps: step %d (\"%s\"): %s", step, name, problem),
				 errhint("Each step is {\"name\": text, \"approvers\": [text, ...], \"required\": int, \"min_amount\": number (optional)}.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("steps: step %d: %s", step, problem),
			 errhint("Each step is {\"name\": text, \"approvers\": [text, ...], \"required\": int, \"min_amount\": number (optional)}.")));
}

/* A member of a step object, or NULL when absent. */
static JsonbValue *
StepMember(JsonbContainer *obj, const char *key)
{
	return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

/* A JSON string as a C string. */
static char *
JsonString(const JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Parse and check one step object. */
static void
ParseStep(JsonbContainer *obj, int no, ApStep *step)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *m;
	char	   *name = NULL;
	char		buf[160];

	/* the name first, so that every later message can name the step */
	m = StepMember(obj, "name");
	if (m != NULL && m->type == jbvString && m->val.string.len > 0)
		name = JsonString(m);

	/* members: only the known ones */
	it = JsonbIteratorInit(obj);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *key = JsonString(&v);
			bool		known = false;

			for (int k = 0; step_members[k]; k++)
				if (strcmp(key, step_members[k]) == 0)
					known = true;
			if (!known)
			{
				snprintf(buf, sizeof(buf), "unknown member \"%.*s\"",
						 pg_mbcliplen(key, strlen(key), 64), key);
				StepError(no, name, buf);
			}
		}
	}

	m = StepMember(obj, "name");
	if (m == NULL || m->type != jbvString)
		StepError(no, NULL, "member \"name\" must be a string");
	name = JsonString(m);
	if (name[0] == '\0')
		StepError(no, NULL, "member \"name\" must not be empty");
	if (pg_mbstrlen(name) > AP_MAX_STEP_NAME)
	{
		snprintf(buf, sizeof(buf), "member \"name\" is longer than %d characters", AP_MAX_STEP_NAME);
		StepError(no, NULL, buf);
	}
	step->name = name;

	m = StepMember(obj, "approvers");
	if (m == NULL || m->type != jbvBinary || !JsonContainerIsArray(m->val.binary.data) ||
		JsonContainerIsScalar(m->val.binary.data))
		StepError(no, name, "member \"approvers\" must be an array of actor ids");
	step->n_approvers = JsonContainerSize(m->val.binary.data);
	if (step->n_approvers < 1 || step->n_approvers > AP_MAX_APPROVERS)
	{
		snprintf(buf, sizeof(buf), "member \"approvers\" lists %d actors; it must list 1 to %d",
				 step->n_approvers, AP_MAX_APPROVERS);
		StepError(no, name, buf);
	}
	step->approvers = palloc(sizeof(char *) * step->n_approvers);
	for (int i = 0; i < step->n_approvers; i++)
	{
		JsonbValue *a = getIthJsonbValueFromContainer(m->val.binary.data, i);

		if (a == NULL || a->type != jbvString || a->val.string.len == 0)
			StepError(no, name, "member \"approvers\" must hold non-empty strings");
		step->approvers[i] = JsonString(a);
		if (pg_mbstrlen(step->approvers[i]) > AP_MAX_ACTOR)
		{
			snprintf(buf, sizeof(buf), "member \"approvers\": an actor id is longer than %d characters",
					 AP_MAX_ACTOR);
			StepError(no, name, buf);
		}
		for (int j = 0; j < i; j++)
			if (strcmp(step->approvers[j], step->approvers[i]) == 0)
			{
				snprintf(buf, sizeof(buf), "member \"approvers\" lists \"%.*s\" twice",
						 pg_mbcliplen(step->approvers[i], strlen(step->approvers[i]), 64),
						 step->approvers[i]);
				StepError(no, name, buf);
			}
	}

	m = StepMember(obj, "required");
	if (m == NULL || m->type != jbvNumeric)
		StepError(no, name, "member \"required\" must be an integer");
	{
		Numeric		n = m->val.numeric;
		Datum		d;

		if (numeric_is_nan(n) || numeric_is_inf(n) ||
			!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
											  DirectFunctionCall2(numeric_trunc, NumericGetDatum(n),
																  Int32GetDatum(0)))) ||
			DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(n),
											 DirectFunctionCall1(int4_numeric, Int32GetDatum(1)))) ||
			DatumGetBool(DirectFunctionCall2(numeric_gt, NumericGetDatum(n),
											 DirectFunctionCall1(int4_numeric,
																 Int32GetDatum(step->n_approvers)))))
		{
			snprintf(buf, sizeof(buf), "member \"required\" must be an integer from 1 to %d (the number of approvers)",
					 step->n_approvers);
			StepError(no, name, buf);
		}
		d = DirectFunctionCall1(numeric_int4, NumericGetDatum(n));
		step->required = DatumGetInt32(d);
	}

	m = StepMember(obj, "min_amount");
	step->has_min_amount = false;
	if (m != NULL && m->type != jbvNull)
	{
		if (m->type != jbvNumeric || numeric_is_nan(m->val.numeric) ||
			numeric_is_inf(m->val.numeric) ||
			DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(m->val.numeric),
											 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
			StepError(no, name, "member \"min_amount\" must be a number, 0 or more");
		step->has_min_amount = true;
		step->min_amount = datumCopy(NumericGetDatum(m->val.numeric), false, -1);
	}
}

/*
 * Parse and check a steps document (22023 naming the step and member when
 * malformed).  Returns the steps, *n their number.
 */
ApStep *
ApStepsParse(Jsonb *doc, int *n)
{
	ApStep	   *steps;
	char		buf[96];

	if (!JB_ROOT_IS_ARRAY(doc) || JB_ROOT_IS_SCALAR(doc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps must be a JSON array of step objects")));
	*n = JB_ROOT_COUNT(doc);
	if (*n < 1 || *n > AP_MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps has %d steps; it must have 1 to %d", *n, AP_MAX_STEPS)));
	steps = palloc0(sizeof(ApStep) * *n);
	for (int i = 0; i < *n; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&doc->root, i);

		if (item == NULL || item->type != jbvBinary || !JsonContainerIsObject(item->val.binary.data))
		{
			snprintf(buf, sizeof(buf), "is not a JSON object");
			StepError(i + 1, NULL, buf);
		}
		ParseStep(item->val.binary.data, i + 1, &steps[i]);
	}
	return steps;
}

/* 22023 when a call gives both steps and a route. */
void
ApStepsCheckArgs(bool has_steps, bool has_approvers)
{
	if (has_steps && has_approvers)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("give either steps or approvers, not both"),
				 errhint("A route of approvers is a single step: {\"name\": ..., \"approvers\": [...], \"required\": n}.")));
}

/* Does step i (0-based) apply to the claim?  A claim without an amount skips none. */
static bool
StepApplies(const ClaimState *st, int i)
{
	const ApStep *step = &st->steps[i];

	if (!step->has_min_amount || st->amount_null)
		return true;
	return DatumGetBool(DirectFunctionCall2(numeric_ge, st->amount, step->min_amount));
}

/* The approvals a claim with steps needs: the sum over the steps that apply (1 if none). */
int
ApStepsRequired(const ClaimState *st)
{
	int			sum = 0;

	for (int i = 0; i < st->n_steps; i++)
		if (StepApplies(st, i))
			sum += st->steps[i].required;
	return sum > 0 ? sum : 1;
}

/* The current step, or NULL. */
const ApStep *
ApStepCurrent(const ClaimState *st)
{
	if (st->n_steps == 0 || st->current_step < 1 || st->current_step > st->n_steps)
		return NULL;
	return &st->steps[st->current_step - 1];
}

/*
 * Is person an approver of the current step who may still act in it: not
 * abstained in it, not having approved the claim already, and not its
 * requester (unless the claim allows self-approval)?
 */
bool
ApStepIsApprover(const ClaimState *st, const char *person)
{
	const ApStep *step = ApStepCurrent(st);

	return step != NULL &&
		ApStringIn(step->approvers, step->n_approvers, person) &&
		!ApStringIn(st->step_abstained, st->n_step_abstained, person) &&
		!ApStringIn(st->approved_by, st->n_approved_by, person) &&
		(st->allow_self_approval || strcmp(person, st->requester) != 0);
}

/* Can the current step still reach its quorum from its own approvers? */
static bool
StepCanReach(const ClaimState *st)
{
	const ApStep *step = ApStepCurrent(st);
	int			possible = st->step_approvals;

	for (int i = 0; i < step->n_approvers; i++)
		if (ApStepIsApprover(st, step->approvers[i]))
			possible++;
	return possible >= step->required;
}

/* Escalate the current step: any reviewer may give its missing approvals. */
void
ApStepsEscalate(ClaimState *st, const char *why)
{
	const ApStep *step = ApStepCurrent(st);

	if (step == NULL || st->step_escalated)
		return;
	st->step_escalated = true;
	ApClaimFollowUp(st, "escalated",
					psprintf("step %d (\"%s\") %s; any reviewer may give its missing approvals",
							 st->current_step, step->name, why));
}

/*
 * Enter the first step that applies at or after index from (0-based).  A
 * step whose approvers can no longer reach its quorum (they approved an
 * earlier step) is escalated at once.  False when no step is left.
 */
bool
ApStepsEnter(ClaimState *st, int from)
{
	for (int i = from; i < st->n_steps; i++)
	{
		if (!StepApplies(st, i))
			continue;
		st->current_step = i + 1;
		st->step_approvals = 0;
		st->step_abstained = NULL;
		st->n_step_abstained = 0;
		st->step_escalated = false;
		if (!StepCanReach(st))
			ApStepsEscalate(st, "cannot reach its quorum from its approvers");
		return true;
	}
	return false;
}

/*
 * One approval in the current step (already added to approval_count and
 * approved_by): completes the step at its quorum and enters the next one, or
 * approves the claim after the last.
 */
void
ApStepsApprove(ClaimState *st)
{
	const ApStep *step = ApStepCurrent(st);
	int			done = st->current_step;

	st->step_approvals++;
	if (st->step_approvals < step->required)
		return;
	ApClaimFollowUp(st, "step_completed",
					psprintf("step %d (\"%s\") completed with %d approvals",
							 done, step->name, st->step_approvals));
	if (!ApStepsEnter(st, done))
	{
		/* the last step is done: the claim is approved and at no step */
		st->status = "approved";
		st->current_step = 0;
	}
}

/*
 * An approver of the current step abstains: they leave the step, which is
 * escalated when it can no longer reach its quorum.
 */
void
ApStepsAbstain(ClaimState *st, const char *person)
{
	char	  **out;

	if (st->step_escalated || !ApStepIsApprover(st, person))
		return;
	out = palloc(sizeof(char *) * (st->n_step_abstained + 1));
	if (st->n_step_abstained > 0)
		memcpy(out, st->step_abstained, sizeof(char *) * st->n_step_abstained);
	out[st->n_step_abstained++] = (char *) person;
	st->step_abstained = out;
	if (!StepCanReach(st))
		ApStepsEscalate(st, "can no longer reach its quorum");
}
