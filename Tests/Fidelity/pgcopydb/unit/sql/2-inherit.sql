  select *
    from public.child_model_1
order by id desc
   limit 2;
