#!lua flags=no-writes
-- truv quota: facts (see truv/quota.h). One read (HMGET would do as a plain
-- command; a script keeps every operation one text in the repository).
-- KEYS[1]    {ns}:f:<key>
-- Returns    {dead_ms|false, reason|false, alive_ms|false, auth_ms|false}
return redis.call('HMGET', KEYS[1], 'd', 'r', 'a', 'u')
