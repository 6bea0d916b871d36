-- Every change to who a key authenticates as is announced on channel `ftq_keys` by the
-- changing transaction itself, so the announcement is delivered at its commit, whatever made
-- the change (the API, `ftq keys revoke` in another process, a rebuild). Servers keep found
-- keys in memory (service.directory.KeyLookup) and forget them on it: the payload is the
-- key's hash, or '*' for "forget every key".
CREATE FUNCTION api_keys_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' AND TG_TABLE_NAME = 'api_keys' THEN
        PERFORM pg_notify('ftq_keys', OLD.key_hash);
    ELSE
        PERFORM pg_notify('ftq_keys', '*');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_notify_change
    AFTER UPDATE OF revoked_at, key_hash, user_id OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change();

CREATE TRIGGER api_keys_notify_truncate
    AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify_change();

CREATE TRIGGER users_notify_change
    AFTER UPDATE OF id, email, role OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change();

CREATE TRIGGER users_notify_truncate
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify_change();
