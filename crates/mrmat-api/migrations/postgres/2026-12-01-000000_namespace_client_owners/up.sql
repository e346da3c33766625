-- Owners of tokens without a user (client credentials) were keyed by the bare client id;
-- they are now `client:<id>`, so that a user whose `sub` equals a client id can never own
-- that client's resources. Such owners were recorded with subject = client_id.
UPDATE owners
   SET subject = 'client:' || client_id
 WHERE subject = client_id
   AND subject NOT LIKE 'client:%';
