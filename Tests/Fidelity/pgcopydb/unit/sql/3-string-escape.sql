table test_str_escape;
