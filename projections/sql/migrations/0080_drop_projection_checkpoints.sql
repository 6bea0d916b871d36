-- projection_checkpoints (0001) was never read or written: the projections are updated in the
-- append's own transaction, and the webhook readers keep their positions in `webhooks`. Dead
-- schema goes (issue 14, item 7).
DROP TABLE projection_checkpoints;
