select id from public.tsv where id = 1;
