terraform {
  # Pure logic: no provider, so `terraform init` and `terraform test` run offline.
  required_version = ">= 1.9"
}
