"""Payload secrets at rest: envelope encryption at submit, opened only at admission,
crypto-shredding of ended jobs, master-key rotation (issue 20). See README "Payload secrets"."""
