create table nocols();
