select count(*) from only public.parent_model;
