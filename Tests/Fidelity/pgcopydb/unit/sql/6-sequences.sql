select last_value from default_table_id_seq;
select last_value from identity_table_id_seq;
select last_value from standalone_id_seq;
select last_value from standalone_smallint_id_seq;
select last_value from standalone_minvalue_id_seq;
