// The older majors are installed under alias names; their API is typed like the current ones for these tests.
declare module 'express4' {
  import express from 'express';
  export default express;
}
declare module 'koa2' {
  import Koa from 'koa';
  export default Koa;
}
