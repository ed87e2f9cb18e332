-- name: churn_backtest
-- description: How well the churn score would have foreseen who left: scores at past cut-offs (data up to each only) against the churn_events of the horizon after it, next to the naive rule (all usage, the last 28 days against the 28 before).
-- param: horizon_days INTEGER = 60 | a leaving counts when it falls within this many days after the cut-off
-- param: top_share DOUBLE = 0.1 | the share of the scored companies flagged at each cut-off (the top k)
-- param: window_days INTEGER = 28 | days of recent activity, as in churn_risk
-- param: report_type VARCHAR = NULL | mssp or reseller; both when left out
--
-- The scores and labels come from churn_labels() (sql/views/churn_labels.sql): at the first
-- day of every period a whole horizon and the grace (churn_grace_days(): a leaving is known as
-- one only then) fit after, the churn score from the data the lake held on
-- that day only (engagement only from syncs made by then), and whether the company left within
-- the horizon. Pooled over the cut-offs: the base rate, AUC (the chance a leaver scores above a
-- stayer, ties counting half), and, flagging the top share at each cut-off, precision, recall
-- and lift (precision over the base rate). The churn score here has the default weights; weights
-- fitted by `hspq churn fit` are backtested there, out of time. The reference, 'naive rule',
-- ranks by one fixed measure: all products' usage of the last 28 days against the 28 before
-- (churn_scores' naive_drop). A score that does not beat it is not worth its components.
-- note warns when the leavers are too few for the figures to mean much (under 30, as many as
-- `hspq churn fit` needs to fit).
with labelled as (
    select * from churn_labels($horizon_days, $window_days, $report_type)
),
models as (
    select 'churn score' as model, cutoff, report_type, security_center_id, components, leaves,
           units_at_risk, default_score as value
    from labelled
    union all
    select 'naive rule', cutoff, report_type, security_center_id, components, leaves,
           units_at_risk, naive_drop
    from labelled
),
ranked as (
    select *,
           -- mid-ranks, so tied values count half
           (rank() over (partition by model, report_type order by value)
            + count(*) over (partition by model, report_type order by value
                             range between unbounded preceding and current row)) / 2.0 as mid_rank,
           row_number() over (partition by model, report_type, cutoff
                              order by value desc, units_at_risk desc, security_center_id) as position,
           count(*) over (partition by model, report_type, cutoff) as at_cutoff
    from models
),
flagged as (
    select *, position <= ceil(cast($top_share as double) * at_cutoff) as top
    from ranked
),
pooled as (
    select model, report_type,
           count(distinct cutoff) as cutoffs,
           count(*) as scored,
           count(*) filter (where leaves) as events,
           sum(mid_rank) filter (where leaves) as leaver_ranks,
           count(*) filter (where top) as flagged,
           count(*) filter (where top and leaves) as flagged_leavers,
           string_agg(distinct components, ' / ' order by components) as components
    from flagged
    group by all
)
select report_type, model, cutoffs, scored, events,
       round(events / scored, 4) as base_rate,
       round((leaver_ranks - events * (events + 1) / 2.0) / (events * (scored - events)), 4) as auc,
       round(flagged_leavers / flagged, 4) as precision_at_k,
       round(flagged_leavers / nullif(events, 0), 4) as recall_at_k,
       round((flagged_leavers / flagged) / nullif(events / scored, 0), 2) as lift,
       components,
       -- Below a few dozen leavers, AUC and lift move by tenths from one leaver more or less.
       case when events = 0 then 'no leaver within any horizon: nothing to rank'
            when events < 30 then 'only ' || events || ' leavers: the figures are noise at this size'
       end as note
from pooled
order by report_type, model;
