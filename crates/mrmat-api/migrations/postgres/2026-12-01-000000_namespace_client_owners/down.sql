UPDATE owners
   SET subject = substr(subject, 8)
 WHERE subject LIKE 'client:%';
