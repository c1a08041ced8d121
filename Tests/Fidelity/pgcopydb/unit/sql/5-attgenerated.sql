table public.gen;
