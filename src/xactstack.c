/*
 * xactstack.c
 *		Values that live like SET LOCAL (see xactstack.h): the identity
 *		(identity.c) and the actor label (actor.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "xactstack.h"

static void
xactstack_free(XactStack *stack, XactStackEntry *entry)
{
	stack->clear(entry);
	pfree(entry);
}

static void
xactstack_pop(XactStack *stack)
{
	XactStackEntry *entry = stack->top;

	stack->top = entry->outer;
	xactstack_free(stack, entry);
}

static void
xactstack_xact_callback(XactEvent event, void *arg)
{
	XactStack  *stack = arg;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			while (stack->top != NULL)
				xactstack_pop(stack);
			break;
		default:
			break;
	}
}

static void
xactstack_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	XactStack  *stack = arg;
	XactStackEntry *top = stack->top;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			while (stack->top != NULL && stack->top->subid == mySubid)
				xactstack_pop(stack);
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			/* the parent takes over; if it had one, the newer one replaces it */
			if (top != NULL && top->subid == mySubid)
			{
				top->subid = parentSubid;
				if (top->outer != NULL && top->outer->subid == parentSubid)
				{
					XactStackEntry *replaced = top->outer;

					top->outer = replaced->outer;
					xactstack_free(stack, replaced);
				}
			}
			break;
		default:
			break;
	}
}

void
xactstack_register(XactStack *stack)
{
	RegisterXactCallback(xactstack_xact_callback, stack);
	RegisterSubXactCallback(xactstack_subxact_callback, stack);
}

XactStackEntry *
xactstack_set(XactStack *stack)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	XactStackEntry *entry = stack->top;

	if (entry != NULL && entry->subid == subid)
		stack->clear(entry);
	else
	{
		entry = MemoryContextAllocZero(TopMemoryContext, stack->entry_size);
		entry->outer = stack->top;
		entry->subid = subid;
		stack->top = entry;
	}
	return entry;
}
