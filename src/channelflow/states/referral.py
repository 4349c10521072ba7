"""The referral-to-Channel lifecycle, exactly as DOMAIN.md's table, declared once as data.

Every other module names states and events through this module's constants.
"""

from __future__ import annotations

from channelflow.states.spec import EventSpec, Lifecycle, Role, SetKey, ValueKind

RECEIVED = "received"
SCREENED = "screened"
PANEL_REVIEW = "panel_review"
ACCEPTED = "accepted"
DECLINED = "declined"
INTERVENTION = "intervention"
CLOSED = "closed"

SCREEN = "screen"
REFER_TO_PANEL = "refer_to_panel"
ADJOURN = "adjourn"
ACCEPT = "accept"
DECLINE = "decline"
START_INTERVENTION = "start_intervention"
REVIEW = "review"
EXIT = "exit"
WITHDRAW_CONSENT = "withdraw_consent"
CLOSE = "close"
RECORD_POST_EXIT_REVIEW = "record_post_exit_review"

# Recorded in the audit trail when a referral is created; not a transition of the machine.
OPEN = "open"

GATEWAY_OUTCOMES = ("proceed", "no_further_action", "signpost", "police_led")
ONWARD_ROUTES = ("signposted", "no_further_action", "police_led")
CONSENT_KINDS = ("given", "parental")
REVIEW_OUTCOMES = ("progressing", "no_progress", "concerns_increased", "ready_to_exit")
CLOSE_CODES = ("duplicate", "withdrawn", "no_further_action", "signposted", "police_led")
POST_EXIT_OUTCOMES = ("no_concerns", "re_refer")
POST_EXIT_REVIEW_MONTHS = (6, 12)

# The close code each gateway outcome or onward route leads to, for `close`'s guard.
CLOSE_CODE_FOR_OUTCOME = {
    "no_further_action": "no_further_action",
    "signpost": "signposted",
    "signposted": "signposted",
    "police_led": "police_led",
}

_ROUTE = SetKey("route", ValueKind.CHOICE, choices=ONWARD_ROUTES, help="onward route")
_PANEL = SetKey("panel", ValueKind.DATE, required=False, help="panel date (default: next panel)")

REFERRAL_LIFECYCLE = Lifecycle(
    name="referral",
    states=(RECEIVED, SCREENED, PANEL_REVIEW, ACCEPTED, DECLINED, INTERVENTION, CLOSED),
    initial=RECEIVED,
    events=(
        EventSpec(
            SCREEN,
            (RECEIVED,),
            SCREENED,
            frozenset({Role.POLICE, Role.COORDINATOR}),
            keys=(SetKey("outcome", ValueKind.CHOICE, choices=GATEWAY_OUTCOMES),),
            summary="record the police gateway assessment",
        ),
        EventSpec(
            REFER_TO_PANEL,
            (SCREENED,),
            PANEL_REVIEW,
            frozenset({Role.COORDINATOR}),
            keys=(_PANEL,),
            summary="put a screened referral (outcome proceed) before the next panel",
        ),
        EventSpec(
            ADJOURN,
            (PANEL_REVIEW,),
            PANEL_REVIEW,
            frozenset({Role.CHAIR}),
            keys=(_PANEL,),
            reason_required=True,
            summary="move the case to the next panel",
        ),
        EventSpec(
            ACCEPT,
            (PANEL_REVIEW,),
            ACCEPTED,
            frozenset({Role.CHAIR}),
            keys=(
                SetKey(
                    "consent",
                    ValueKind.CHOICE,
                    choices=CONSENT_KINDS,
                    help="parental for under-18s",
                ),
                SetKey("lead", ValueKind.USER, help="the case lead (a user with role lead)"),
            ),
            summary="adopt as a Channel case",
        ),
        EventSpec(
            DECLINE,
            (PANEL_REVIEW,),
            DECLINED,
            frozenset({Role.CHAIR}),
            keys=(_ROUTE,),
            reason_required=True,
            summary="the panel decides Channel is not appropriate",
        ),
        EventSpec(
            START_INTERVENTION,
            (ACCEPTED,),
            INTERVENTION,
            frozenset({Role.COORDINATOR}),
            keys=(
                SetKey("support_plan", ValueKind.TEXT, help="support plan reference"),
                SetKey(
                    "provider",
                    ValueKind.TEXT,
                    required=False,
                    help="intervention provider, where one is used",
                    max_length=200,
                ),
                SetKey(
                    "first_review",
                    ValueKind.DATE,
                    required=False,
                    help="first review date (default: next panel)",
                ),
            ),
            summary="support starts under a support plan",
        ),
        EventSpec(
            REVIEW,
            (INTERVENTION,),
            INTERVENTION,
            frozenset({Role.CHAIR}),
            keys=(
                SetKey("outcome", ValueKind.CHOICE, choices=REVIEW_OUTCOMES),
                SetKey(
                    "next_review",
                    ValueKind.DATE,
                    required=False,
                    help="next review date (default: next panel)",
                ),
            ),
            summary="the panel reviews the support plan",
        ),
        EventSpec(
            EXIT,
            (INTERVENTION,),
            CLOSED,
            frozenset({Role.CHAIR}),
            keys=(SetKey("summary", ValueKind.TEXT, help="exit summary"),),
            summary="the case leaves Channel; post-exit reviews at +6 and +12 months",
        ),
        EventSpec(
            WITHDRAW_CONSENT,
            (ACCEPTED, INTERVENTION),
            CLOSED,
            frozenset({Role.COORDINATOR}),
            keys=(_ROUTE,),
            reason_required=True,
            summary="the person withdraws consent",
        ),
        EventSpec(
            CLOSE,
            (RECEIVED, SCREENED, DECLINED),
            CLOSED,
            frozenset({Role.COORDINATOR}),
            keys=(
                SetKey("code", ValueKind.CHOICE, choices=CLOSE_CODES, help="closing reason code"),
            ),
            summary="close a referral that does not go on to Channel support",
        ),
        EventSpec(
            RECORD_POST_EXIT_REVIEW,
            (CLOSED,),
            CLOSED,
            frozenset({Role.COORDINATOR}),
            keys=(SetKey("outcome", ValueKind.CHOICE, choices=POST_EXIT_OUTCOMES),),
            summary="record a due post-exit review (re_refer opens a linked referral)",
        ),
    ),
)
