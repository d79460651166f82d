-- A sample shop database for the demo: users, products, orders, order_items, payments,
-- tens of thousands of rows with the types real services use. Deterministic (setseed).
SET client_min_messages = warning;
DROP TABLE IF EXISTS payments, order_items, orders, products, users CASCADE;
DROP TYPE IF EXISTS order_status;
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled', 'refunded');
SELECT setseed(0.42) \g /dev/null

CREATE TABLE users (
  id          bigint PRIMARY KEY,
  public_id   uuid NOT NULL,
  email       text NOT NULL,
  full_name   text,
  country     char(2),
  signup_ip   inet,
  tags        text[],
  preferences jsonb,
  is_active   boolean NOT NULL DEFAULT true,
  birth_date  date,
  created_at  timestamptz NOT NULL
);
INSERT INTO users
SELECT g,
       md5(g::text)::uuid,
       'user' || g || '@example.com',
       CASE WHEN g % 17 = 0 THEN NULL
            WHEN g % 5 = 0 THEN 'Zoë Ñúñez ' || g
            WHEN g % 7 = 0 THEN '山田 太郎 ' || g
            ELSE 'User ' || g END,
       (ARRAY['US','DE','FR','JP','BR','IN'])[1 + g % 6],
       ('10.' || (g % 250) || '.' || (g / 250 % 250) || '.1')::inet,
       CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['newsletter', CASE WHEN g % 3 = 0 THEN 'vip' ELSE 'regular' END] END,
       jsonb_build_object('theme', CASE WHEN g % 2 = 0 THEN 'dark' ELSE 'light' END, 'lang', 'en', 'n', g % 10),
       g % 11 <> 0,
       CASE WHEN g % 9 = 0 THEN NULL ELSE date '1960-01-01' + (g * 37 % 15000) END,
       now() - interval '90 days' + (g * interval '7 minutes')
FROM generate_series(1, 12000) g;

CREATE TABLE products (
  id          integer PRIMARY KEY,
  sku         varchar(32) NOT NULL,
  name        text NOT NULL,
  price       numeric(12,2) NOT NULL,
  weight_kg   real,
  attributes  jsonb,
  categories  text[] NOT NULL,
  created_at  timestamp NOT NULL
);
INSERT INTO products
SELECT g,
       'SKU-' || lpad(g::text, 6, '0'),
       CASE WHEN g % 10 = 0 THEN 'Café crème ' || g ELSE 'Product ' || g END,
       round((1 + random() * 499)::numeric, 2),
       CASE WHEN g % 13 = 0 THEN NULL ELSE round((random() * 20)::numeric, 3)::real END,
       jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g % 3], 'sizes', jsonb_build_array('S','M','L')),
       ARRAY[(ARRAY['home','garden','toys','books'])[1 + g % 4]],
       timestamp '2023-01-01' + g * interval '1 hour'
FROM generate_series(1, 600) g;

CREATE TABLE orders (
  id          bigint PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES users(id),
  status      order_status NOT NULL,
  total       numeric(12,2) NOT NULL,
  currency    char(3) NOT NULL,
  note        text,
  shipping    jsonb,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz
);
INSERT INTO orders
SELECT g,
       1 + (g * 7919) % 12000,
       (ARRAY['pending','paid','shipped','cancelled','refunded']::order_status[])[1 + g % 5],
       round((5 + random() * 995)::numeric, 2),
       (ARRAY['USD','EUR','JPY'])[1 + g % 3],
       CASE WHEN g % 6 = 0 THEN 'Leave at the door ✓' ELSE NULL END,
       CASE WHEN g % 8 = 0 THEN NULL ELSE jsonb_build_object('method', 'courier', 'days', g % 5) END,
       date_trunc('day', now()) - interval '7 days' + (g * interval '20 seconds'),
       CASE WHEN g % 3 = 0 THEN NULL ELSE date_trunc('day', now()) - interval '7 days' + (g * interval '21 seconds') END
FROM generate_series(1, 30000) g;

CREATE TABLE order_items (
  order_id    bigint NOT NULL REFERENCES orders(id),
  line        smallint NOT NULL,
  product_id  integer NOT NULL REFERENCES products(id),
  quantity    integer NOT NULL,
  unit_price  numeric(12,2) NOT NULL,
  discount    numeric(5,4),
  PRIMARY KEY (order_id, line)
);
INSERT INTO order_items
SELECT o.id, l, 1 + (o.id * 31 + l) % 600, 1 + (o.id + l) % 4,
       round((1 + random() * 199)::numeric, 2),
       CASE WHEN (o.id + l) % 10 = 0 THEN 0.1500 ELSE NULL END
FROM orders o, LATERAL generate_series(1, 1 + o.id % 4) l;

CREATE TABLE payments (
  id          bigint PRIMARY KEY,
  order_id    bigint NOT NULL REFERENCES orders(id),
  amount      numeric(12,2) NOT NULL,
  provider    text NOT NULL,
  card_last4  char(4),
  succeeded   boolean NOT NULL,
  raw_response json,
  paid_at     timestamptz NOT NULL
);
INSERT INTO payments
SELECT o.id, o.id, o.total,
       (ARRAY['stripe','adyen','paypal'])[1 + o.id % 3],
       CASE WHEN o.id % 3 = 2 THEN NULL ELSE lpad((o.id % 10000)::text, 4, '0') END,
       o.id % 23 <> 0,
       json_build_object('code', CASE WHEN o.id % 23 = 0 THEN 'declined' ELSE 'ok' END),
       o.created_at + interval '3 minutes'
FROM orders o
WHERE o.status <> 'pending';
ANALYZE;
