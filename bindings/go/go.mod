module turn

go 1.19
